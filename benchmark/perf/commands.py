"""Performance benchmarks that print figures (never timed unit tests):

* ``fusebench perf loop``: time per training step of the shared loop against a bare PyTorch
  loop over the same tensors, model and batch size, and their ratio; and the stacked loop's
  time per step per model (three seeds trained as one computation) against the bare loop;
* ``fusebench perf phases``: wall time of each phase of a bench run (data, encoding, tuning,
  final runs, report) from a cold state folder;
* ``fusebench perf workers``: wall time of a matrix with 1 worker and with N workers, and the
  speed-up;
* ``fusebench perf budget``: test scores under the profile's training budget and a larger one,
  and their difference (benchmark/perf/budget_check.py);
* ``fusebench perf scale``: seconds per epoch, samples/s and peak memory of the real loop on
  generated datasets of growing size (benchmark/perf/scale_check.py);
* ``fusebench perf fidelity``: the profile's protocol against the reference protocol on the same
  slice: rank agreement, largest score difference, winners (benchmark/perf/fidelity.py)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmark.paths import cache_dir, data_dir

STACK = 3  # models in the stacked loop that `perf loop` times (the default profile's seeds)


def loop_overhead(strategy: str, dataset: str, batch_size: int, epochs: int, repeats: int, device: str) -> dict:
    import torch
    from torch import nn

    from benchmark.data.cards import find_card
    from benchmark.features.tensors import build_features
    from benchmark.train.device import synchronize
    from benchmark.train.loop import TrainConfig, train
    from benchmark.train.model import build_model
    from benchmark.train.stacked import train_stacked
    from strategies import get_strategy
    from strategies.search_space import defaults

    features = build_features(find_card(dataset), log=lambda *_: None)
    split = features.splits_on(device)["train"]  # cached dtype (fp16); both loops convert per batch
    modalities = features.modalities
    held = split.pooled[modalities[0]].device
    hparams = defaults(get_strategy(strategy).search_space)

    def bare(seed: int) -> float:
        model = build_model(strategy, features, hparams, seed).to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4, fused=True)  # as loop.adamw
        tokens = model.consumes_tokens
        n = len(split)
        steps = 0
        synchronize(device)
        started = time.perf_counter()
        for _ in range(epochs):
            order = torch.randperm(n).to(device)
            for start in range(0, n, batch_size):
                index = order[start:start + batch_size]
                at = index.to(held)  # the rows, where the features are held
                if tokens:
                    inputs = {m: split.tokens[m][at].to(device).float() for m in modalities}
                    mask = {m: split.token_mask[m][at].to(device) for m in modalities}
                else:
                    inputs, mask = {m: split.pooled[m][at].to(device).float() for m in modalities}, None
                present = torch.ones(len(index), len(modalities), dtype=torch.bool, device=device)
                loss = nn.functional.cross_entropy(model(inputs, present, mask), split.labels[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # the protocol clips too
                optimizer.step()
                steps += 1
        synchronize(device)
        return (time.perf_counter() - started) / steps

    def harness(seed: int) -> float:
        model = build_model(strategy, features, hparams, seed)
        config = TrainConfig(epochs=epochs, batch_size=batch_size, modality_dropout=0.3, seed=seed, device=device)
        started = time.perf_counter()
        train(model, split, modalities, config)
        steps = epochs * -(-len(split) // batch_size)
        return (time.perf_counter() - started) / steps

    def stacked(seed: int) -> float:
        """Per model: the stacked loop's time per step divided by the models in the stack."""
        models = [build_model(strategy, features, hparams, seed + k) for k in range(STACK)]
        configs = [TrainConfig(epochs=epochs, batch_size=batch_size, modality_dropout=0.3, seed=seed + k,
                               device=device) for k in range(STACK)]
        started = time.perf_counter()
        train_stacked(models, split, modalities, configs)
        steps = epochs * -(-len(split) // batch_size)
        return (time.perf_counter() - started) / steps / STACK

    bare(0), harness(0), stacked(0)  # warm-up
    bare_times, harness_times, stacked_times = [], [], []
    for r in range(repeats):  # interleaved so drift affects all equally
        bare_times.append(bare(r))
        harness_times.append(harness(r))
        stacked_times.append(stacked(r))
    b, h, s = (statistics.median(t) for t in (bare_times, harness_times, stacked_times))
    return {"strategy": strategy, "dataset": dataset, "device": device, "batch_size": batch_size,
            "bare_ms_per_step": b * 1e3, "harness_ms_per_step": h * 1e3, "ratio": h / b,
            "stacked_ms_per_model_step": s * 1e3, "stacked_ratio": s / b}


def _bench_env(home: Path, share_cache: bool) -> dict:
    env = {**os.environ, "FUSEBENCH_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlruns.db'}",
           "FUSEBENCH_OPTUNA_STORAGE": f"sqlite:///{home / 'optuna.db'}", "FUSEBENCH_REPORTS": str(home / "reports")}
    if share_cache:  # reuse prepared data and encoded features: measure the matrix itself
        env["FUSEBENCH_CACHE"] = str(cache_dir())
        (home / "data").parent.mkdir(parents=True, exist_ok=True)
        if data_dir().is_dir() and not (home / "data").exists():
            (home / "data").symlink_to(data_dir(), target_is_directory=True)
    return env


def run_bench_subprocess(args: list[str], env: dict) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "benchmark.cli", "bench", *args], env=env,
                            capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"bench {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return seconds, result.stdout


def phases(bench_args: list[str], cold: bool) -> dict[str, float]:
    """Run a bench in a fresh state folder and return its phase times, read from the summary
    it writes (``bench --summary``)."""
    with tempfile.TemporaryDirectory(prefix="fusebench-phases-") as tmp:
        summary_path = Path(tmp) / "summary.json"
        seconds, _ = run_bench_subprocess(bench_args + ["--summary", str(summary_path)],
                                          _bench_env(Path(tmp), share_cache=not cold))
        summary = json.loads(summary_path.read_text())
    figures = dict(summary["phase_seconds"])
    figures["total_process_wall"] = seconds
    return figures


def worker_speedup(bench_args: list[str], workers: int) -> dict[str, float]:
    times = {}
    for count in (1, workers):
        with tempfile.TemporaryDirectory(prefix="fusebench-workers-") as tmp:
            times[count], _ = run_bench_subprocess(bench_args + ["--workers", str(count), "--no-report"],
                                                   _bench_env(Path(tmp), share_cache=True))
    return {"one_worker_s": times[1], f"{workers}_workers_s": times[workers], "speedup": times[1] / times[workers]}


def main(args) -> int:
    from benchmark.train.device import resolve_device

    device = resolve_device(args.device)
    if args.what == "loop":
        rows = [loop_overhead(s, args.dataset, args.batch_size, args.epochs, args.repeats, device)
                for s in args.strategy]
        print(f"{'strategy':<24}{'dataset':<14}{'device':<7}{'batch':>6}{'bare ms/step':>14}{'harness ms/step':>17}"
              f"{'ratio':>8}{f'stacked x{STACK} ms/step/model':>28}{'vs bare':>9}")
        for r in rows:
            print(f"{r['strategy']:<24}{r['dataset']:<14}{r['device']:<7}{r['batch_size']:>6}"
                  f"{r['bare_ms_per_step']:>14.3f}{r['harness_ms_per_step']:>17.3f}{r['ratio']:>8.3f}"
                  f"{r['stacked_ms_per_model_step']:>28.3f}{r['stacked_ratio']:>9.3f}")
        worst = max(r["ratio"] for r in rows)
        print(f"worst harness/bare ratio: {worst:.3f} (target <= 1.10) -> {'OK' if worst <= 1.10 else 'ABOVE TARGET'}")
        return 0
    if args.what == "budget":
        return budget_main(args, device)
    if args.what == "fidelity":
        from benchmark.perf.fidelity import main as fidelity_main

        return fidelity_main(args, device)
    if args.what == "audio":
        from benchmark.perf.audio_probe import main as audio_main

        return audio_main(list(args.encoders))
    if args.what == "scale":
        from benchmark.perf.scale_check import main as scale_main

        return scale_main(args, device)
    bench_args = ["--profile", args.profile, "--device", device] + (args.bench_args or [])
    if args.what == "phases":
        figures = phases(bench_args, cold=args.cold)
        print(f"phases of `fusebench bench {' '.join(bench_args)}` ({'cold state' if args.cold else 'prepared data'}, {device}):")
        for name, seconds in figures.items():
            print(f"  {name:<20}{seconds:>9.1f} s")
        return 0
    figures = worker_speedup(bench_args, args.workers)
    print(f"`fusebench bench {' '.join(bench_args)}` on {os.cpu_count()} cores ({device}):")
    print(f"  1 worker:  {figures['one_worker_s']:.1f} s")
    print(f"  {args.workers} workers: {figures[f'{args.workers}_workers_s']:.1f} s")
    print(f"  speed-up:  {figures['speedup']:.2f}x")
    return 0


def budget_main(args, device: str) -> int:
    from benchmark.perf.budget_check import budget_regret, header, summary
    from benchmark.run.config import load_profile, parse_list
    from benchmark.run.plan import Plan

    config = load_profile(args.profile).with_overrides(
        datasets=parse_list(args.datasets), strategies=parse_list(args.strategies), seeds=parse_list(args.seeds, int),
        device=device, missing_inputs=getattr(args, "missing_inputs", None))
    print(f"budget check, profile {config.name!r}: epoch cap {config.epochs}, patience {config.patience} vs "
          f"{args.factor}x both; default hyperparameters, training dropout {args.dropout:g}, seeds "
          f"{', '.join(map(str, config.seeds))}; mean test score in each dataset's ranking metric ({device})")
    print(header(args.factor), flush=True)
    rows = budget_regret(Plan.build(config), args.dropout, args.factor, log=lambda line: print(line, flush=True))
    for line in summary(rows):
        print(line)
    return 0
