"""The `vector` encoder (precomputed features) through real files and build_features: parquet
list columns, JSON arrays, .npy paths relative to the card's folder, 2-D arrays as padded token
sequences, standardisation fitted on train only, null cells as an absent modality, and errors
that name the row."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmark.data.cards import load_card
from benchmark.data.loading import DataError
from benchmark.features.catalog import get_encoder
from benchmark.features.tensors import build_features

SPLIT_ROWS = {"train": 12, "validation": 6, "test": 6}


def _card(folder, fmt: str, modalities: str, ext: str) -> object:
    files = ", ".join(f"{s}: {s}.{ext}" for s in SPLIT_ROWS)
    path = folder / "vec.yaml"
    path.write_text(f"name: vec\nsource:\n  local: {{format: {fmt}, data_files: {{{files}}}}}\nlabel: y\n"
                    f"modalities:\n{modalities}\n")
    return load_card(path)


def _vectors(split: str, dim: int, offset: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(list(SPLIT_ROWS).index(split))
    return rng.normal(size=(SPLIT_ROWS[split], dim)) + offset  # (N, D)


def _write_parquet(folder, columns_by_split: dict[str, dict[str, list]]) -> None:
    import datasets as hf

    folder.mkdir(parents=True, exist_ok=True)
    for split, columns in columns_by_split.items():
        hf.Dataset.from_dict({**columns, "y": [i % 2 for i in range(SPLIT_ROWS[split])]}).to_parquet(
            str(folder / f"{split}.parquet"))


def _features(card):
    return build_features(card, log=lambda *_: None)


def test_parquet_list_columns_are_pooled_vectors(fusebench_home):
    folder = fusebench_home / "data"
    data = {s: _vectors(s, 8) for s in SPLIT_ROWS}
    _write_parquet(folder, {s: {"emb": data[s].tolist(), "other": (data[s][:, :3] * 2).tolist()} for s in SPLIT_ROWS})
    import pyarrow.parquet as pq

    assert str(pq.read_schema(folder / "train.parquet").field("emb").type).startswith("list")  # a real list column
    card = _card(folder, "parquet", "  a: {column: emb, encoder: vector}\n  b: {column: other, encoder: vector}",
                 "parquet")
    features = _features(card)
    assert features.input_dims() == {"a": 8, "b": 3}
    test = features.splits["test"]
    assert torch.allclose(test.pooled["a"].float(), torch.tensor(data["test"], dtype=torch.float32), atol=1e-2)
    assert test.tokens["a"].shape == (6, 1, 8) and test.token_mask["a"].all()  # one token: the vector itself
    assert test.available.all()


def test_json_arrays(fusebench_home):
    folder = fusebench_home / "data"
    folder.mkdir()
    data = {s: _vectors(s, 5) for s in SPLIT_ROWS}
    for split in SPLIT_ROWS:
        with open(folder / f"{split}.jsonl", "w") as handle:
            for i, vector in enumerate(data[split]):
                handle.write(json.dumps({"emb": vector.tolist(), "txt": json.dumps(vector[:2].tolist()), "y": i % 2}) + "\n")
    card = _card(folder, "json", "  a: {column: emb, encoder: vector}\n  b: {column: txt, encoder: vector}", "jsonl")
    features = _features(card)
    assert torch.allclose(features.splits["train"].pooled["a"].float(), torch.tensor(data["train"]).float(), atol=1e-2)
    # a string cell holding a JSON array (e.g. from a CSV) is read as the array
    assert torch.allclose(features.splits["train"].pooled["b"].float(), torch.tensor(data["train"][:, :2]).float(),
                          atol=1e-2)


def _npy_dataset(card_folder, arrays_by_split: dict[str, list[np.ndarray | None]]) -> None:
    """A parquet of relative .npy paths (a None array: a null cell), the files beside the card."""
    (card_folder / "feats").mkdir(parents=True)
    columns = {}
    for split, arrays in arrays_by_split.items():
        paths = []
        for i, array in enumerate(arrays):
            if array is None:
                paths.append(None)
                continue
            np.save(card_folder / "feats" / f"{split}_{i}.npy", array)
            paths.append(f"feats/{split}_{i}.npy")
        columns[split] = {"path": paths, "emb": [np.ones(2).tolist()] * len(arrays)}
    _write_parquet(card_folder, columns)


def test_npy_paths_resolve_against_the_card_folder(fusebench_home, monkeypatch):
    card_folder = fusebench_home / "somewhere" / "project"
    data = {s: list(_vectors(s, 6).astype(np.float32)) for s in SPLIT_ROWS}
    _npy_dataset(card_folder, data)
    elsewhere = fusebench_home / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative paths must not depend on the current directory
    card = _card(card_folder, "parquet", "  a: {column: path, encoder: vector}\n  b: {column: emb, encoder: vector}",
                 "parquet")
    features = _features(card)
    assert torch.allclose(features.splits["validation"].pooled["a"].float(), torch.tensor(np.stack(data["validation"])),
                          atol=1e-2)


def test_token_arrays_of_varying_length_with_mask(fusebench_home):
    """2-D arrays (rows x width) become tokens padded to the split's longest, with a mask;
    pooled is the masked mean; a null cell is an absent modality (zeros, one valid zero token)."""
    card_folder = fusebench_home / "data"
    rng = np.random.default_rng(0)
    arrays = {s: [rng.normal(size=(1 + i % 4, 3)) for i in range(SPLIT_ROWS[s])] for s in SPLIT_ROWS}
    arrays["test"][2] = None
    _npy_dataset(card_folder, arrays)
    card = _card(card_folder, "parquet", "  seq: {column: path, encoder: vector}\n  b: {column: emb, encoder: vector}",
                 "parquet")
    features = _features(card)
    test = features.splits["test"]
    assert test.tokens["seq"].shape == (6, 4, 3) and test.token_mask["seq"].shape == (6, 4)
    lengths = test.token_mask["seq"].sum(1).tolist()
    assert lengths == [1, 2, 1, 4, 1, 2]  # row 2 is absent: one (zero) token
    for row in (0, 1, 3, 5):
        array = torch.tensor(arrays["test"][row], dtype=torch.float32)
        assert torch.allclose(test.tokens["seq"][row, : len(array)].float(), array, atol=1e-2)
        assert torch.all(test.tokens["seq"][row, len(array):] == 0)
        assert torch.allclose(test.pooled["seq"][row].float(), array.mean(0), atol=1e-2)
    assert torch.all(test.pooled["seq"][2] == 0) and torch.all(test.tokens["seq"][2] == 0)
    names = sorted(["seq", "b"])
    assert test.available[:, names.index("seq")].tolist() == [True, True, False, True, True, True]
    assert features.splits["train"].available.all()


def test_standardisation_is_fitted_on_train_only(fusebench_home):
    folder = fusebench_home / "data"
    data = {"train": _vectors("train", 4) * 3 + 10, "validation": _vectors("validation", 4) + 100,
            "test": _vectors("test", 4)}
    _write_parquet(folder, {s: {"emb": data[s].tolist(), "other": [[1.0, 0.0]] * SPLIT_ROWS[s]} for s in SPLIT_ROWS})
    card = _card(folder, "parquet", "  a: {column: emb, encoder: vector, standardize: true}\n"
                                    "  b: {column: other, encoder: vector}", "parquet")
    features = _features(card)
    mean, std = data["train"].mean(0), data["train"].std(0)
    train = features.splits["train"].pooled["a"].float()
    assert torch.allclose(train.mean(0), torch.zeros(4), atol=1e-2) and torch.allclose(train.std(0, unbiased=False),
                                                                                        torch.ones(4), atol=1e-2)
    validation = features.splits["validation"].pooled["a"].float()  # scaled with train's statistics, not its own
    assert torch.allclose(validation, torch.tensor((data["validation"] - mean) / std).float(), atol=0.05)
    assert validation.mean() > 10  # its own statistics would have centred it on 0

    encoder = get_encoder("vector", standardize=True)
    encoder.fit(data["train"].tolist())
    state = encoder.state()
    encoder.fit(data["test"].tolist())
    assert encoder.state() != state  # the fitted statistics are part of the cache key


def test_bad_vector_length_names_the_row(fusebench_home):
    folder = fusebench_home / "data"
    data = {s: _vectors(s, 8).tolist() for s in SPLIT_ROWS}
    data["validation"][3] = data["validation"][3][:7]
    _write_parquet(folder, {s: {"emb": data[s], "other": [[0.0]] * SPLIT_ROWS[s]} for s in SPLIT_ROWS})
    card = _card(folder, "parquet", "  a: {column: emb, encoder: vector}\n  b: {column: other, encoder: vector}",
                 "parquet")
    with pytest.raises(DataError) as info:
        _features(card)
    message = str(info.value)
    assert "\n" not in message
    for part in ("dataset 'vec'", "split 'validation'", "column 'emb'", "row 3", "length 7, expected 8"):
        assert part in message, message


@pytest.mark.parametrize("cells, problem", [
    ([[1.0, 2.0], [1.0, float("nan")]], "row 1: non-finite value"),
    ([[1.0, 2.0], ["a", "b"]], "row 1: expected numbers, got dtype <U1"),
    ([[[1.0, 2.0]], [1.0, 2.0]], "row 1: expected a 2-D array of width 2 (as in row 0), got shape (2,)"),
    ([[[1.0, 2.0], [3.0]]], "row 0: rows of different lengths"),
    ([[1.0], 3.5], "row 1: expected a vector or a 2-D array of numbers, got float"),
    ([[1.0], "missing.npy"], "row 1: file missing.npy does not exist"),
])
def test_bad_cells_name_the_row(cells, problem):
    from benchmark.features.base import EncodingError

    with pytest.raises(EncodingError) as info:
        get_encoder("vector").encode(cells)
    assert problem in str(info.value)


def test_vector_encoder_refuses_columns_list(fusebench_home):
    from benchmark.data.cards import CardError

    folder = fusebench_home / "data"
    _write_parquet(folder, {s: {"e1": [[1.0]] * n, "e2": [[2.0]] * n} for s, n in SPLIT_ROWS.items()})
    card = _card(folder, "parquet", "  a: {columns: [e1, e2], encoder: vector}", "parquet")
    with pytest.raises(CardError) as info:
        _features(card)
    assert "modalities.a" in str(info.value) and "vec.yaml" in str(info.value) and "column: <name>" in str(info.value)
