"""Shared fixtures: a tiny image+text dataset generated on the fly (no network) and an
isolated fusebench home, MLflow store and Optuna storage in a temporary folder."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

# Per-test time limits (pytest-timeout). pyproject's `timeout` (300 s) bounds every unit test. An
# end-to-end test (marked `slow`) runs real bench/worker processes on what may be a shared 2-core
# machine, where one has taken several minutes, so it gets this limit instead; a test that needs
# more still says so itself with @pytest.mark.timeout(seconds). The limit is there to turn a hang
# into a failure with a traceback, not to time the tests.
E2E_TIMEOUT_S = 1200


def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(E2E_TIMEOUT_S))


COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 60, 220)}
SHAPES = ["square", "stripe"]


def _png(colour, shape, rng) -> bytes:
    from PIL import Image

    pixels = np.full((32, 32, 3), 255, dtype=np.uint8)
    if shape == "square":
        pixels[8:24, 8:24] = colour
    else:
        pixels[:, 12:20] = colour
    pixels = np.clip(pixels.astype(int) + rng.integers(-20, 20, pixels.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def make_toy_dataset(folder: Path, rows: int = 60, seed: int = 0) -> Path:
    """Label = colour; the image shows the colour, the text names it in half the rows."""

    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    records = []
    for i in range(rows):
        label = names[i % len(names)]
        shape = SHAPES[rng.integers(len(SHAPES))]
        text = f"a {label} {shape}" if rng.random() < 0.5 else f"a {shape} of some colour"
        records.append({"image": {"bytes": _png(COLOURS[label], shape, rng), "path": None}, "caption": text,
                        "colour": label})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "toy.parquet"
    import datasets as hf

    features = hf.Features({"image": hf.Image(), "caption": hf.Value("string"), "colour": hf.Value("string")})
    hf.Dataset.from_list(records, features=features).to_parquet(str(path))
    return path


TOY_CARD = """name: toy
description: generated colour shapes (tests only)
origin: generated in tests
licence: CC0
size: {rows} rows
source:
  local: {{format: parquet, data_files: toy.parquet}}
split: {{seed: 0, validation: 0.2, test: 0.3}}
label: colour
modalities:
  image: {{column: image, encoder: efficientnet_lite0}}
  text: {{column: caption, encoder: minilm}}
"""


@pytest.fixture
def fusebench_home(tmp_path, monkeypatch):
    """Isolated state: FUSEBENCH_HOME, dataset cards, reports, MLflow and Optuna stores."""
    home = tmp_path / "home"
    cards = tmp_path / "cards"
    cards.mkdir()
    monkeypatch.setenv("FUSEBENCH_HOME", str(home))
    # The feature cache under this test's home, never one the developer's environment names: some tests
    # zero or delete cache entries on purpose.
    monkeypatch.delenv("FUSEBENCH_CACHE", raising=False)
    monkeypatch.setenv("FUSEBENCH_DATASETS", str(cards))
    monkeypatch.setenv("FUSEBENCH_REPORTS", str(tmp_path / "reports"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    monkeypatch.setenv("FUSEBENCH_OPTUNA_STORAGE", f"sqlite:///{tmp_path / 'optuna.db'}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


@pytest.fixture(scope="session")
def toy_parquet(tmp_path_factory) -> Path:
    return make_toy_dataset(tmp_path_factory.mktemp("toydata"))


@pytest.fixture
def toy_card(fusebench_home, toy_parquet) -> Path:
    import shutil

    cards = fusebench_home / "cards"
    shutil.copy(toy_parquet, cards / "toy.parquet")
    path = cards / "toy.yaml"
    path.write_text(TOY_CARD.format(rows=60))
    return path
