"""Feature cache: content-hash keys, atomic writes, and damaged entries never trusted."""

from __future__ import annotations

import torch

from benchmark.features import cache as feature_cache


def _tensors():
    return {"pooled": torch.randn(4, 3).half(), "tokens": torch.randn(4, 2, 3).half(), "mask": torch.ones(4, 2, dtype=torch.uint8)}


def test_roundtrip_and_key_depends_on_every_part(tmp_path):
    parts = dict(revision="r1", split="train", column="c", encoder="e", version="v1", options={"a": 1}, state={})
    key = feature_cache.cache_key(**parts)
    for change in ({"revision": "r2"}, {"split": "test"}, {"column": "d"}, {"encoder": "f"}, {"version": "v2"},
                   {"options": {"a": 2}}, {"state": {"mean": 1.0}}):
        assert feature_cache.cache_key(**{**parts, **change}) != key
    tensors = _tensors()
    feature_cache.save_entry(key, tensors, {"dataset": "d"}, root=tmp_path)
    loaded = feature_cache.load_entry(key, root=tmp_path)
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors)
    assert list(tmp_path.glob("*.tmp")) == []  # the temporary file was renamed into place


def test_leftover_temporary_is_never_an_entry(tmp_path):
    key = feature_cache.cache_key(x=1)
    (tmp_path / f".{key}.abc123.tmp").write_bytes(b"half of a safetensors file")  # interrupted write
    assert feature_cache.load_entry(key, root=tmp_path) is None
    assert feature_cache.list_entries(root=tmp_path) == []
    count, _ = feature_cache.clear(root=tmp_path)
    assert count == 1 and list(tmp_path.iterdir()) == []


def test_truncated_entry_is_a_miss_and_is_removed(tmp_path):
    key = feature_cache.cache_key(x=2)
    path = feature_cache.save_entry(key, _tensors(), {"dataset": "d"}, root=tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert feature_cache.load_entry(key, root=tmp_path) is None
    assert not path.exists()
    path.write_bytes(b"")
    assert feature_cache.load_entry(key, root=tmp_path) is None


def test_interrupted_save_leaves_no_entry(tmp_path, monkeypatch):
    import pytest

    key = feature_cache.cache_key(x=3)

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(feature_cache, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        feature_cache.save_entry(key, _tensors(), {}, root=tmp_path)
    assert list(tmp_path.iterdir()) == [] and feature_cache.load_entry(key, root=tmp_path) is None


def test_entry_with_missing_tensors_is_a_miss(tmp_path):
    key = feature_cache.cache_key(x=4)
    feature_cache.save_entry(key, {"pooled": torch.zeros(2, 2)}, {}, root=tmp_path)
    assert feature_cache.load_entry(key, root=tmp_path) is None


def test_second_build_uses_cache(fusebench_home):
    from benchmark.data.cards import load_card

    from tests.test_datasets_errors import _dataset

    from benchmark.features.tensors import build_features

    card = _dataset(fusebench_home / "cards")
    first = build_features(card, log=lambda s: None)
    second = build_features(load_card(card.path), log=lambda s: None)
    assert first.cache_misses == 6 and second.cache_hits == 6 and second.cache_misses == 0
    assert torch.equal(first.splits["test"].pooled["table"], second.splits["test"].pooled["table"])
    assert second.cache_bytes > 0
