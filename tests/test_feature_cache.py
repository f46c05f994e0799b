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


def _overwrite_pooled(path, fill: bytes) -> None:
    """Overwrite the bytes of the entry's `pooled` tensor in place, keeping the file's size."""
    start, header, _ = feature_cache.read_header(path)
    begin, stop = header["pooled"]["data_offsets"]
    with open(path, "r+b") as handle:
        handle.seek(start + begin)
        handle.write((fill * (stop - begin))[: stop - begin])


def test_same_size_corruption_is_caught_by_the_checksum(tmp_path):
    """Issue 21, item 8: an entry overwritten at the same size (zeros, fp16 NaN) passes every
    header check; its checksum fails, so it is a miss, removed, with a warning naming it."""
    import struct

    import pytest

    nan16 = struct.pack("<e", float("nan"))
    for name, fill in (("zeros", b"\0"), ("nan", nan16)):
        key = feature_cache.cache_key(damage=name)
        path = feature_cache.save_entry(key, _tensors(), {"dataset": "d"}, root=tmp_path)
        size = path.stat().st_size
        _overwrite_pooled(path, fill)
        assert path.stat().st_size == size
        with pytest.warns(UserWarning, match=f"damaged.*{key}.*do not match its checksum"):
            assert feature_cache.load_entry(key, root=tmp_path) is None
        assert not path.exists()


def test_a_streamed_entry_carries_a_verified_checksum(tmp_path):
    import numpy as np
    import pytest

    layout = {"pooled": (torch.float16, (4, 3)), "tokens": (torch.float16, (4, 2, 3)), "mask": (torch.uint8, (4, 2))}
    tensors = _tensors()
    chunks = [(name, tensors[name][i:i + 2].numpy()) for name in layout for i in (0, 2)]
    feature_cache.save_entry_streamed("streamed", layout, iter(chunks), {"dataset": "d"}, root=tmp_path)
    loaded = feature_cache.load_entry("streamed", root=tmp_path)
    assert all(torch.equal(loaded[k], tensors[k]) for k in layout)
    assert feature_cache.checksum(loaded) == feature_cache.checksum(tensors)  # the same whatever the file order
    path = feature_cache.entry_path("streamed", tmp_path)
    _overwrite_pooled(path, np.float16(np.nan).tobytes())
    with pytest.warns(UserWarning, match="do not match its checksum"):
        assert feature_cache.load_entry("streamed", root=tmp_path) is None


def test_an_entry_without_a_checksum_is_encoded_again(tmp_path):
    import pytest
    from safetensors.torch import save_file

    key = feature_cache.cache_key(old=1)
    save_file(_tensors(), str(feature_cache.entry_path(key, tmp_path)), metadata={"dataset": "d"})
    with pytest.warns(UserWarning, match="no checksum"):
        assert feature_cache.load_entry(key, root=tmp_path) is None


def test_a_zeroed_entry_is_encoded_again_by_the_next_build(fusebench_home):
    import pytest

    from benchmark.data.cards import load_card
    from benchmark.features.tensors import build_features
    from tests.test_datasets_errors import _dataset

    card = _dataset(fusebench_home / "cards")
    first = build_features(card, log=lambda s: None)
    expected = first.splits["test"].pooled["table"].clone()  # a copy: the entry is memory-mapped
    entries = sorted(feature_cache.cache_dir().glob("*.safetensors"))
    for path in entries:
        _overwrite_pooled(path, b"\0")
    with pytest.warns(UserWarning, match="do not match its checksum"):
        second = build_features(load_card(card.path), log=lambda s: None)
    assert second.cache_misses == 6
    assert torch.equal(expected, second.splits["test"].pooled["table"])
