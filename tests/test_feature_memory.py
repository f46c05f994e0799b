"""Features held once, read lazily: cache entries are memory-mapped in their cached dtype,
placed once per device, and converted to float32 batch by batch; `perf scale` runs end to end;
the bench reports each worker's peak resident memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.features import cache as feature_cache
from benchmark.features.tensors import FeatureSet, SplitTensors, mask_as_bool


def _entry(n: int = 6, d: int = 5, t: int = 3) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    mask = torch.rand(n, t, generator=generator) > 0.3
    return {"pooled": torch.randn(n, d, generator=generator).half(),
            "tokens": torch.randn(n, t, d, generator=generator).half(), "mask": mask.to(torch.uint8)}


def _mapped_files() -> dict[Path, list[tuple[int, int]]]:
    """This process's file-backed memory mappings: path -> [(start, end)] (Linux /proc)."""
    regions: dict[Path, list[tuple[int, int]]] = {}
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].startswith("/"):
            start, end = (int(x, 16) for x in parts[0].split("-"))
            regions.setdefault(Path(parts[5]), []).append((start, end))
    return regions


def _is_mapped_from(tensor: torch.Tensor, path: Path) -> bool:
    ptr = tensor.data_ptr()
    return any(start <= ptr < end for start, end in _mapped_files().get(path.resolve(), []))


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc to see mappings")
def test_loaded_entry_is_memory_mapped_in_its_cached_dtype(tmp_path):
    tensors = _entry()
    key = feature_cache.cache_key(x="mapped")
    path = feature_cache.save_entry(key, tensors, {"dataset": "d"}, root=tmp_path)
    loaded = feature_cache.load_entry(key, root=tmp_path)
    assert loaded["pooled"].dtype == torch.float16 and loaded["tokens"].dtype == torch.float16
    assert loaded["mask"].dtype == torch.uint8
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors)
    for name in ("pooled", "tokens", "mask"):  # the bytes are the file's pages, not a copy
        assert _is_mapped_from(loaded[name], path), name
    # Copy-on-write: writing to a loaded tensor never reaches the file.
    loaded["pooled"].zero_()
    assert torch.equal(feature_cache.load_entry(key, root=tmp_path)["pooled"], tensors["pooled"])
    mask = mask_as_bool(loaded["mask"])
    assert mask.dtype == torch.bool and mask.data_ptr() == loaded["mask"].data_ptr()  # a view, not a copy
    assert torch.equal(mask, tensors["mask"].bool())


@pytest.mark.parametrize("damage", ["truncate", "append", "header_length", "bad_json", "wrong_size"])
def test_damaged_entry_is_still_a_miss_and_removed(tmp_path, damage):
    key = feature_cache.cache_key(x=damage)
    path = feature_cache.save_entry(key, _entry(), {}, root=tmp_path)
    data = bytearray(path.read_bytes())
    header_length = int.from_bytes(data[:8], "little")
    if damage == "truncate":
        data = data[:-7]
    elif damage == "append":
        data += b"\0" * 8
    elif damage == "header_length":
        data[:8] = (len(data) * 2).to_bytes(8, "little")
    elif damage == "bad_json":
        data[8:12] = b"}}}}"
    else:  # a tensor's byte range that does not match its shape
        header = bytes(data[8:8 + header_length]).replace(b'"shape":[6,5]', b'"shape":[6,4]')
        assert len(header) == header_length
        data[8:8 + header_length] = header
    path.write_bytes(bytes(data))
    assert feature_cache.load_entry(key, root=tmp_path) is None
    assert not path.exists()  # to be encoded and written again


def test_streamed_entry_is_a_standard_safetensors_file(tmp_path):
    from safetensors.torch import load_file

    tensors = _entry(n=10)
    layout = {k: (v.dtype, tuple(v.shape)) for k, v in tensors.items()}
    chunks = [(k, v[i:i + 4].numpy()) for k, v in tensors.items() for i in range(0, 10, 4)]
    path = feature_cache.save_entry_streamed("streamed", layout, iter(chunks), {"dataset": "d"}, root=tmp_path)
    ours, theirs = feature_cache.load_entry("streamed", root=tmp_path), load_file(str(path))
    assert all(torch.equal(ours[k], tensors[k]) and torch.equal(theirs[k], tensors[k]) for k in tensors)
    with pytest.raises(ValueError, match="incomplete"):  # a short stream leaves no entry behind
        feature_cache.save_entry_streamed("short", layout, iter(chunks[:-1]), {}, root=tmp_path)
    assert feature_cache.load_entry("short", root=tmp_path) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["streamed.safetensors"]


def _fp16_features(n: int = 40) -> FeatureSet:
    generator = torch.Generator().manual_seed(1)
    labels = torch.arange(n) % 2

    def split() -> SplitTensors:
        a = (torch.randn(n, 6, generator=generator) + labels[:, None] * 2).half()
        b = torch.randn(n, 3, generator=generator).half()
        mask = torch.ones(n, 1, dtype=torch.bool)
        return SplitTensors({"a": a, "b": b}, {"a": a[:, None], "b": b[:, None]}, {"a": mask, "b": mask}, labels)

    return FeatureSet("fp16", ["a", "b"], ["0", "1"], {"train": split(), "validation": split(), "test": split()})


def test_model_inputs_are_float32_batches_of_fp16_features():
    from benchmark.train.batching import model_inputs

    split = _fp16_features().splits["train"]
    index = torch.tensor([3, 0, 7])
    inputs, mask = model_inputs(split, ["a", "b"], index, tokens=False)
    assert mask is None and all(x.dtype == torch.float32 for x in inputs.values())
    assert torch.equal(inputs["a"], split.pooled["a"][index].float())
    inputs, mask = model_inputs(split, ["a", "b"], index, tokens=True, device="cpu")
    assert inputs["b"].shape == (3, 1, 3) and inputs["b"].dtype == torch.float32
    assert all(m.dtype == torch.bool and m.shape == (3, 1) for m in mask.values())
    assert split.pooled["a"].dtype == torch.float16 and split.labels.dtype == torch.int64  # held as cached


def test_splits_are_placed_once_per_device_without_copies_on_cpu():
    features = _fp16_features()
    splits = features.splits_on("cpu")
    assert features.splits_on(torch.device("cpu")) is splits  # every unit reuses the placement
    for name, split in splits.items():
        original = features.splits[name]
        assert split.pooled["a"].data_ptr() == original.pooled["a"].data_ptr()
        assert split.pooled["a"].dtype == torch.float16
    moved = features.splits["train"].to("cpu")  # dtype kept, nothing copied
    assert moved.pooled["b"].dtype == torch.float16
    assert moved.pooled["b"].data_ptr() == features.splits["train"].pooled["b"].data_ptr()


def test_the_loop_and_evaluation_run_on_fp16_features():
    from benchmark.train.evaluation import References, evaluate, validation_scores
    from benchmark.train.loop import TrainConfig, train
    from benchmark.train.model import build_model

    features = _fp16_features()
    splits = features.splits_on("cpu")
    model = build_model("concat", features, {}, seed=0)
    stats = train(model, splits["train"], features.modalities, TrainConfig(epochs=3, batch_size=8, min_epochs=1),
                  val_split=splits["validation"])
    assert stats.epochs_run >= 1
    score, loss = validation_scores(model, splits["validation"], features.modalities)
    assert 0.0 <= score <= 1.0 and np.isfinite(loss)
    references = References.of(splits["train"].labels, splits["test"].labels, features.num_classes)
    result = evaluate(model, splits["test"], features.modalities, references, curve=False)
    assert 0.0 <= result.accuracy <= 1.0 and set(result.subset_accuracy) == {"a+b", "a", "b"}


def test_perf_scale_generates_mapped_fp16_data_and_trains_exactly_its_epochs(tmp_path):
    from benchmark.perf import scale_check

    features = scale_check.generate(tmp_path, 2000)
    train = features.splits["train"]
    assert len(train) == 2000 and len(features.splits["validation"]) == scale_check.validation_rows(2000)
    assert {m: tuple(t.shape) for m, t in train.pooled.items()} == {"image": (2000, 1280), "text": (2000, 384)}
    assert all(t.dtype == torch.float16 for t in train.pooled.values())
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".safetensors"] * 4
    assert set(train.labels.tolist()) == set(range(scale_check.CLASSES))
    result = scale_check.run_size(tmp_path / "run", 2000, "concat", epochs=2, batch_size=512, device="cpu")
    assert result.rows == 2000 and result.epochs == 2 and result.features_on == "cpu (memory-mapped)"
    assert result.seconds_per_epoch > 0 and result.samples_per_s > 0 and result.peak_rss_mb > 0
    assert result.peak_gpu_mb is None and result.val_accuracy > 1 / scale_check.CLASSES  # it learns something
    line = scale_check.format_row(result, cuda=False)
    assert line.split()[0] == "2000"
    verdicts = scale_check.verdicts([result, scale_check.ScaleResult(**{**result.__dict__, "rows": 1_000_000,
                                                                        "seconds_per_epoch": 500 * result.seconds_per_epoch})])
    assert "-> linear" in verdicts[0] and "1,000,000 rows" in verdicts[1]


def test_perf_scale_rows_must_be_positive_integers(capsys):
    from benchmark.cli import main
    from benchmark.perf.scale_check import parse_rows

    assert parse_rows("10000, 2_000") == [10000, 2000]
    for bad in ("10k", "0", "100,-5", ""):
        assert main(["perf", "scale", "--rows", bad]) == 2
        assert "--rows" in capsys.readouterr().err


def test_a_process_reports_its_own_peak_rss_not_its_parents():
    """ru_maxrss of a fork+exec child starts at its parent's peak; the figure used is the child's own."""
    from benchmark.train.cost import peak_rss_mb

    ballast = bytearray(1500 * 2**20)
    ballast[::4096] = b"1" * len(ballast[::4096])  # make this (the parent) resident well above the child
    parent = peak_rss_mb()
    assert parent >= 1500
    code = ("from benchmark.train.cost import peak_rss_mb\n"
            "x = bytearray(100 * 2**20); x[::4096] = b'1' * len(x[::4096])\nprint(peak_rss_mb())")
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    del ballast
    assert 100 <= child < parent - 1000  # the child's own ~100 MiB plus Python and torch, not the parent's


def test_worker_peak_rss_reaches_the_bench_summary(tmp_path):
    import json

    from benchmark.run.coordinator import BenchSummary, format_worker_rss, write_summary

    path = tmp_path / "summary.json"
    write_summary(BenchSummary("m", 4, skipped=2, reused=3, worker_peak_rss_mb=[812.4, None]), path)
    written = json.loads(path.read_text())
    assert (written["worker_peak_rss_mb"], written["reused"], written["skipped"]) == ([812.4, None], 3, 2)
    assert format_worker_rss([812.4, None]) == "812 MiB, n/a" and format_worker_rss([]) == "n/a"
