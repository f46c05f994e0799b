"""Bad input gets a clear error naming the dataset, split, column and (where possible) row,
and nothing bad is written to the feature cache. Small generated local data, cheap encoders."""

from __future__ import annotations

import io

import numpy as np
import pytest

from benchmark.data.cards import CardError, load_card
from benchmark.data.loading import DataError
from benchmark.features.tensors import build_features
from benchmark.paths import cache_dir


def _png(value: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_split(path, rows: int, offset: int = 0, bad_image_row: int | None = None, label=None):
    import datasets as hf

    records = [{
        "pic": {"bytes": b"\x89PNG\r\n\x1a\n not really a png" if i == bad_image_row else _png(40 * (i % 2)), "path": None},
        "size": float(i + offset), "kind": ["a", "b"][i % 2],
        "y": label(i) if label else ["even", "odd"][i % 2],
    } for i in range(rows)]
    features = hf.Features({"pic": hf.Image(), "size": hf.Value("float64"), "kind": hf.Value("string"),
                            "y": hf.Value("float64") if label else hf.Value("string")})
    columns = {k: [r[k] for r in records] for k in features}
    hf.Dataset.from_dict(columns, features=features).to_parquet(str(path))


CARD = """name: bad
origin: generated in tests
licence: CC0
source:
  local:
    format: parquet
    data_files: {{train: train.parquet, validation: validation.parquet, test: test.parquet}}
label: y
modalities:
{modalities}
"""
GOOD_MODALITIES = """  pic: {column: pic, encoder: raw_pixels, size: 8, patch: 4}
  table: {columns: [size, kind], encoder: tabular}"""


def _dataset(folder, modalities=GOOD_MODALITIES, sizes=(12, 6, 6), bad=None, label=None):
    for split, rows in zip(("train", "validation", "test"), sizes):
        _write_split(folder / f"{split}.parquet", rows, bad_image_row=(bad or {}).get(split), label=label)
    path = folder / "bad.yaml"
    path.write_text(CARD.format(modalities=modalities))
    return load_card(path)


def _cached_files():
    return sorted(cache_dir().glob("*")) if cache_dir().is_dir() else []


def test_good_dataset_builds(fusebench_home):
    features = build_features(_dataset(fusebench_home / "cards"), log=lambda s: None)
    assert features.input_dims() == {"pic": 64, "table": 4}
    assert len(_cached_files()) == 6


BAD_INPUTS = {
    "missing column": (
        {"modalities": GOOD_MODALITIES.replace("column: pic", "column: picture")},
        ["'bad'", "'train'", "'picture'", "modalities.pic.column"]),
    "missing tabular column": (
        {"modalities": GOOD_MODALITIES.replace("[size, kind]", "[size, colour]")},
        ["dataset 'bad', split 'train': column 'colour' (modality 'table')"]),
    "unknown encoder": (
        {"modalities": GOOD_MODALITIES.replace("encoder: raw_pixels", "encoder: raw_pixel")},
        ["'bad'", "'pic'", "raw_pixel", "Did you mean"]),
    "label of wrong type": (
        {"label": lambda i: i * 0.5},
        ["'bad'", "split 'train'", "column 'y'", "row 0", "float"]),
    "empty split": (
        {"sizes": (12, 6, 0)},
        ["dataset 'bad': split 'test' is empty"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_named_and_nothing_is_cached(case, fusebench_home):
    """Each bad input names the dataset, split, column/field (and row) and leaves the cache empty."""
    changes, expected = BAD_INPUTS[case]
    card = _dataset(fusebench_home / "cards", **changes)
    with pytest.raises(DataError) as info:
        build_features(card, log=lambda s: None)
    missing = [text for text in expected if text not in str(info.value)]
    assert not missing, f"{missing} not in error: {info.value}"
    assert _cached_files() == []


def test_corrupted_image(fusebench_home):
    card = _dataset(fusebench_home / "cards", bad={"validation": 3})
    with pytest.raises(DataError) as info:
        build_features(card, log=lambda s: None)
    message = str(info.value)
    assert "'bad'" in message and "split 'validation'" in message and "column 'pic'" in message and "row 3" in message
    assert "corrupted" in message
    # The clean training split may be cached; nothing is cached for the failing split or after it.
    from safetensors import safe_open

    for path in _cached_files():
        assert path.suffix == ".safetensors"
        with safe_open(str(path), framework="pt") as handle:
            assert handle.metadata()["split"] == "train"


def test_unreadable_image_file(fusebench_home):
    """A path that does not exist is reported with the row, the file and the remedy."""
    from benchmark.features.base import EncodingError
    from benchmark.features.catalog import get_encoder

    with pytest.raises(EncodingError, match=r"row 1: file not found: /nonexistent/x\.png.*missing: allowed"):
        get_encoder("raw_pixels", size=8, patch=4).encode([{"bytes": _png(0), "path": None},
                                                           {"bytes": None, "path": "/nonexistent/x.png"}])


def test_modality_declared_twice_same_name(fusebench_home):
    modalities = GOOD_MODALITIES + "\n  pic: {column: size, encoder: tabular}"
    with pytest.raises(CardError) as info:
        _dataset(fusebench_home / "cards", modalities)
    assert info.value.field_name == "modalities" and "'pic' is declared twice" in str(info.value)
    assert "bad.yaml" in str(info.value)


def test_modality_declared_twice_same_spec(fusebench_home):
    modalities = GOOD_MODALITIES + "\n  pic2: {column: pic, encoder: raw_pixels, size: 8, patch: 4}"
    with pytest.raises(CardError, match="declared twice"):
        _dataset(fusebench_home / "cards", modalities)


def test_hub_card_offline_fails_fast_with_instructions(fusebench_home, monkeypatch):
    import time

    from benchmark.data.loading import load_splits
    from benchmark.paths import REPO_ROOT

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    card = load_card(REPO_ROOT / "datasets" / "hateful_memes.yaml")
    started = time.perf_counter()
    with pytest.raises(DataError) as info:
        load_splits(card)
    assert time.perf_counter() - started < 30
    message = str(info.value)
    assert "'hateful_memes'" in message and "HF_HUB_OFFLINE=1" in message
    assert "local copy" in message and "hateful_memes.yaml" in message and "format: parquet" in message
