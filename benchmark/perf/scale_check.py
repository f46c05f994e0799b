"""`fusebench perf scale`: does training scale to large datasets? For each row count a
two-modality dataset of pooled features (image 1280-d and text 384-d, the widths of the
EfficientNet-Lite0 and MiniLM encoders; 10 classes) is generated into a temporary folder as
feature-cache entries, written chunk by chunk (never whole in memory), loaded the way cached
features are (memory-mapped, fp16) and trained with the real loop for a fixed number of
epochs. Each size runs in a fresh process, so its peak resident memory is its own.

One line per size: rows, seconds per epoch, training samples per second, peak resident MiB
of that process (its own high-water mark, :func:`benchmark.train.cost.peak_rss_mb`, which
counts the mapped feature pages once read), and on CUDA the peak allocated GPU MiB. Then two verdicts: time per epoch per row of the largest
size against the smallest (linear when at most ``LINEAR_SLACK`` times), and the peak resident
memory at 1,000,000 rows against 6 GB."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

MODALITIES = {"image": 1280, "text": 384}  # name -> pooled width
CLASSES = 10
SIGNAL = 0.05  # class means ~ N(0, SIGNAL^2) per dimension, rows = mean + N(0, 1): learnable, not trivial
CHUNK_ROWS = 16_384  # rows generated and written at a time
LINEAR_SLACK = 1.2  # time per epoch per row may grow this much from the smallest size to the largest
RSS_TARGET_ROWS = 1_000_000
RSS_TARGET_BYTES = 6e9  # 6 GB
RESULT_PREFIX = "fusebench-scale-result "
DEFAULT_ROWS = "10000,100000,1000000"


@dataclass
class ScaleResult:
    rows: int
    seconds_per_epoch: float
    samples_per_s: float
    peak_rss_mb: float
    peak_gpu_mb: float | None  # CUDA only
    val_accuracy: float
    features_on: str  # where the training features were held: "cpu (memory-mapped)" or the GPU
    generate_s: float
    epochs: int


def parse_rows(text: str) -> list[int]:
    """``"10000,100000"`` -> [10000, 100000]. Raises ValueError naming the bad item."""
    rows = []
    for item in text.split(","):
        try:
            value = int(item.strip().replace("_", ""))
        except ValueError:
            raise ValueError(f"--rows: expected comma-separated positive integers, got {item.strip()!r}") from None
        if value <= 0:
            raise ValueError(f"--rows: expected positive integers, got {value}")
        rows.append(value)
    return rows


def validation_rows(rows: int) -> int:
    """A small validation split: 5% of the training rows, between 500 and 10,000."""
    return min(10_000, max(500, rows // 20))


def _chunks(labels: np.ndarray, means: np.ndarray, seed: list[int]):
    """("pooled", fp16 (b, D)) pieces: each row its class mean plus unit Gaussian noise."""
    for start in range(0, len(labels), CHUNK_ROWS):
        batch = labels[start : start + CHUNK_ROWS]
        rng = np.random.default_rng(seed + [start])
        noise = rng.standard_normal((len(batch), means.shape[1]), dtype=np.float32)  # (b, D)
        noise += means[batch]
        yield "pooled", noise.astype(np.float16)


def generate(folder: Path, rows: int, seed: int = 0):
    """Write the dataset (train: ``rows``, validation: :func:`validation_rows`) as feature-cache
    entries under ``folder`` and load it as the real data path does. -> FeatureSet"""
    import torch

    from benchmark.features import cache as feature_cache
    from benchmark.features.tensors import FeatureSet, SplitTensors, mask_as_bool

    means = {m: np.random.default_rng([seed, i]).standard_normal((CLASSES, d), dtype=np.float32) * SIGNAL
             for i, (m, d) in enumerate(sorted(MODALITIES.items()))}  # m -> (C, D)
    splits = {}
    for s, (split, n) in enumerate((("train", rows), ("validation", validation_rows(rows)))):
        labels = np.random.default_rng([seed, 100 + s]).integers(CLASSES, size=n)  # (N,)
        tensors: dict[str, dict] = {"pooled": {}, "tokens": {}, "token_mask": {}}
        for i, (m, dim) in enumerate(sorted(MODALITIES.items())):
            key = feature_cache.cache_key(scale=rows, seed=seed, split=split, modality=m)
            layout = {"pooled": (torch.float16, (n, dim)),  # pooled features only: no token sequences
                      "tokens": (torch.float16, (n, 0, dim)), "mask": (torch.uint8, (n, 0))}
            feature_cache.save_entry_streamed(key, layout, _chunks(labels, means[m], [seed, s, i]),
                                              {"dataset": "scale", "split": split, "modality": m}, root=folder)
            entry = feature_cache.load_entry(key, root=folder)
            if entry is None:
                raise RuntimeError(f"generated entry {key} in {folder} did not load back")
            tensors["pooled"][m], tensors["tokens"][m] = entry["pooled"], entry["tokens"]
            tensors["token_mask"][m] = mask_as_bool(entry["mask"])
        splits[split] = SplitTensors(**tensors, labels=torch.from_numpy(labels))
    return FeatureSet("scale", sorted(MODALITIES), [str(c) for c in range(CLASSES)], splits)


def run_size(folder: Path, rows: int, strategy: str, epochs: int, batch_size: int, device: str,
             seed: int = 0) -> ScaleResult:
    """Generate ``rows`` rows and train ``strategy`` on them for exactly ``epochs`` epochs (the
    first is warm-up and untimed when there are several), in this process."""

    from benchmark.train.cost import peak_rss_mb
    from benchmark.train.device import is_cuda, peak_memory_mb, reset_peak_memory, synchronize
    from benchmark.train.loop import TrainConfig, train
    from benchmark.train.model import build_model
    from benchmark.train.tuning import default_params

    started = time.perf_counter()
    features = generate(folder, rows, seed)
    generate_s = time.perf_counter() - started
    reset_peak_memory(device)
    splits = features.splits_on(device)
    model_hp, training = default_params(strategy)
    model = build_model(strategy, features, model_hp, seed)
    # patience = min_epochs = epochs: neither early stopping nor the rate's decay can end it early
    config = TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, device=device, patience=epochs,
                         min_epochs=epochs, **training)
    stats = train(model, splits["train"], features.modalities, config, val_split=splits["validation"])
    synchronize(device)
    held = splits["train"].pooled[features.modalities[0]].device
    return ScaleResult(
        rows=rows, seconds_per_epoch=stats.seconds_per_epoch, samples_per_s=stats.train_samples_per_s,
        peak_rss_mb=peak_rss_mb(), peak_gpu_mb=peak_memory_mb(device) if is_cuda(device) else None,
        val_accuracy=stats.val_score[-1], features_on="cpu (memory-mapped)" if held.type == "cpu" else str(held),
        generate_s=generate_s, epochs=stats.epochs_run)


def run_size_in_subprocess(rows: int, strategy: str, epochs: int, batch_size: int, device: str) -> ScaleResult:
    """:func:`run_size` in a fresh Python process (its own peak resident memory), in a temporary
    folder under the system's temporary directory that is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"fusebench-scale-{rows}-") as folder:
        command = [sys.executable, "-m", "benchmark.perf.scale_check", "--rows", str(rows), "--strategy", strategy,
                   "--epochs", str(epochs), "--batch-size", str(batch_size), "--device", device, "--folder", folder]
        done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"perf scale at {rows} rows failed (exit {done.returncode}):\n"
                           f"{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return ScaleResult(**json.loads(lines[-1][len(RESULT_PREFIX):]))


def header(cuda: bool) -> str:
    gpu = f"{'peak GPU MiB':>14}" if cuda else ""
    return (f"{'rows':>10}{'s/epoch':>10}{'samples/s':>12}{'peak RSS MiB':>14}{gpu}{'val acc':>9}"
            f"{'data s':>8}  features")


def format_row(r: ScaleResult, cuda: bool) -> str:
    gpu = (f"{r.peak_gpu_mb:>14.0f}" if r.peak_gpu_mb is not None else f"{'n/a':>14}") if cuda else ""
    return (f"{r.rows:>10}{r.seconds_per_epoch:>10.3f}{r.samples_per_s:>12.0f}{r.peak_rss_mb:>14.0f}{gpu}"
            f"{r.val_accuracy:>9.3f}{r.generate_s:>8.1f}  {r.features_on}")


def verdicts(results: list[ScaleResult]) -> list[str]:
    """The linearity of time per epoch in rows, and the peak resident memory at 1,000,000 rows."""
    lines = []
    small, large = min(results, key=lambda r: r.rows), max(results, key=lambda r: r.rows)
    if large.rows > small.rows:
        ratio = (large.seconds_per_epoch / large.rows) / (small.seconds_per_epoch / small.rows)
        verdict = "linear" if ratio <= LINEAR_SLACK else "WORSE THAN LINEAR"
        lines.append(f"time per epoch per row, {large.rows:,} vs {small.rows:,} rows: {ratio:.2f}x "
                     f"(linear when <= {LINEAR_SLACK:.1f}x) -> {verdict}")
    at_target = [r for r in results if r.rows == RSS_TARGET_ROWS]
    limit_mb = RSS_TARGET_BYTES / 2**20
    if at_target:
        r = at_target[0]
        verdict = "met" if r.peak_rss_mb * 2**20 < RSS_TARGET_BYTES else "MISSED"
        lines.append(f"peak resident memory at {RSS_TARGET_ROWS:,} rows: {r.peak_rss_mb:,.0f} MiB "
                     f"(target < 6 GB = {limit_mb:,.0f} MiB) -> {verdict}")
    else:
        lines.append(f"peak resident memory target (< 6 GB at {RSS_TARGET_ROWS:,} rows): not run at that size")
    return lines


def main(args, device: str) -> int:
    """`fusebench perf scale`: ``args.rows`` (list of ints), ``args.strategy``, ``args.epochs``,
    ``args.batch_size``."""
    from benchmark.train.device import is_cuda

    cuda = is_cuda(device)
    timed = max(1, args.epochs - 1)
    print(f"perf scale: {args.strategy}, {args.epochs} epochs ({timed} timed), batch {args.batch_size}, {device}; "
          f"pooled fp16 features {' + '.join(f'{m} {d}-d' for m, d in sorted(MODALITIES.items()))}, "
          f"{CLASSES} classes; one process per size (peak RSS: that process's high-water mark"
          f"{'; peak GPU is max_memory_allocated' if cuda else ''})")
    print(_load(), flush=True)
    print(header(cuda), flush=True)
    results = []
    for rows in args.rows:
        result = run_size_in_subprocess(rows, args.strategy, args.epochs, args.batch_size, device)
        print(format_row(result, cuda), flush=True)
        results.append(result)
    for line in verdicts(results):
        print(line)
    print(_load(), flush=True)
    return 0


def _load() -> str:
    """The machine's load, so that timings taken beside other work can be told apart."""
    if not hasattr(os, "getloadavg"):
        return "load average: n/a"
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def _child(argv: list[str] | None = None) -> int:
    """One size, in this process: print its :class:`ScaleResult` as a JSON line."""
    parser = argparse.ArgumentParser(description="one size of `fusebench perf scale` (run by it)")
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--strategy", default="concat")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=512, dest="batch_size")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--folder", required=True)
    args = parser.parse_args(argv)
    result = run_size(Path(args.folder), args.rows, args.strategy, args.epochs, args.batch_size, args.device)
    print(RESULT_PREFIX + json.dumps(asdict(result)), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(_child())
