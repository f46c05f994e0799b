"""`fusebench` command line: list strategies and datasets, prepare data, run the matrix,
build reports and manage the feature cache."""

from __future__ import annotations

import argparse
import sys
import time


def _strategies(args) -> int:
    from strategies import discover, load_plugin

    for plugin in args.plugin or []:
        load_plugin(plugin)
    for name, cls in discover().items():
        tokens = "tokens" if cls.consumes_tokens else "pooled"
        print(f"{name:<24} {cls.family:<13} {tokens:<7} {cls.description}")
    return 0


def _datasets(args) -> int:
    from benchmark.data.cards import load_all_cards

    for name, card in load_all_cards().items():
        mods = ", ".join(f"{m.name}={m.encoder}" for m in sorted(card.modalities, key=lambda m: m.name))
        print(f"{name:<20} {card.source_kind:<8} [{mods}] {card.description}")
    return 0


def _encoders(args) -> int:
    from benchmark.features.catalog import ENCODERS

    for name, factory in ENCODERS.items():
        doc = (factory.__doc__ or "").strip().splitlines()[0]
        print(f"{name:<20} {getattr(factory, 'input_kind', ''):<8} {doc}")
    return 0


def _data(args) -> int:
    from benchmark.data.builtin import ensure_prepared
    from benchmark.data.cards import load_all_cards

    cards = load_all_cards()
    names = args.names or list(dict.fromkeys(c.source["builtin"] for c in cards.values() if c.source_kind == "builtin"))
    for name in names:
        started = time.perf_counter()
        folder = ensure_prepared(name)
        print(f"{name}: ready at {folder} ({time.perf_counter() - started:.1f}s)")
    return 0


def _matrix_config(args):
    from benchmark.run.config import ProfileError, load_profile, parse_list
    from benchmark.train.device import resolve_device
    from benchmark.train.seeds import TUNING_SEED_BASE

    config = load_profile(args.profile)
    config = config.with_overrides(
        datasets=parse_list(args.datasets), strategies=parse_list(args.strategies),
        dropout_rates=parse_list(args.dropout, float), seeds=parse_list(args.seeds, int),
        trials=args.trials, epochs=args.epochs, batch_size=args.batch_size, device=resolve_device(args.device),
        plugins=tuple(args.plugin) if args.plugin else None, patience=getattr(args, "patience", None),
        amp=getattr(args, "amp", None), stack_seeds=False if getattr(args, "no_stack", False) else None,
    )
    clash = [s for s in config.seeds if not 0 <= s < TUNING_SEED_BASE]
    if clash:
        raise ProfileError(f"--seeds: expected integers in [0, {TUNING_SEED_BASE}) (seeds from {TUNING_SEED_BASE} up "
                           f"train the tuning trials), got {clash}")
    return config


def _bench(args) -> int:
    from benchmark.run.coordinator import finish_bench, format_worker_rss, run_bench, write_summary
    from benchmark.run.planning import plan_cells
    from benchmark.paths import default_optuna_storage, default_tracking_uri

    config = _matrix_config(args)
    cells = plan_cells(config)
    if args.dry_run:
        from benchmark.run.estimate import estimate_seconds

        studies = sorted({(c.dataset, c.variant, c.dropout) for c in cells})
        for cell in cells:
            print(cell.label())
        seconds = estimate_seconds(config, cells, workers=max(1, args.workers))
        print(f"{len(cells)} cells, {len(studies)} Optuna studies x {config.trials} trials; estimated time on "
              f"{config.device} with {args.workers} worker(s): {seconds / 60:.1f} min (rough; encoding not included)")
        return 0
    tracking_uri = args.tracking_uri or default_tracking_uri()
    storage = args.storage or default_optuna_storage()
    print(f"fusebench bench: profile {config.name}, matrix {config.matrix_id()}, {len(cells)} cells, device "
          f"{config.device}, workers {args.workers}, tracking {tracking_uri}, optuna {storage}")
    summary = run_bench(config, tracking_uri, storage, workers=args.workers, retry_failed=args.retry_failed)
    if args.workers == 0:
        print(f"matrix {summary.matrix_id} registered and its data prepared; start workers with:\n"
              f"  fusebench worker --storage '{storage}' --tracking-uri '{tracking_uri}' --matrix-id {summary.matrix_id}")
        return 0
    finish_bench(summary, tracking_uri, config.device, report=not args.no_report)
    if args.summary:
        write_summary(summary, args.summary)
    phases = ", ".join(f"{k} {v:.1f}s" for k, v in summary.phase_seconds.items())
    print(f"matrix {summary.matrix_id}: {summary.cells} cells: {summary.completed} run now, {summary.skipped} "
          f"already done, {len(summary.failed)} failed; wall time {summary.wall_seconds:.1f}s ({phases})")
    print(f"peak RSS per worker: {format_worker_rss(summary.worker_peak_rss_mb)}")
    for label, error in summary.failed:
        print(f"  failed: {label}: {error}")
    if summary.failed:
        print("  failed cells are kept as failed runs in MLflow; re-run with --retry-failed to try them again")
    return 0


def _worker(args) -> int:
    from benchmark.paths import default_optuna_storage
    from benchmark.run.coordinator import run_worker, write_worker_summary

    outcome = run_worker(args.storage or default_optuna_storage(), args.tracking_uri, args.matrix_id, args.device)
    if args.summary:
        write_worker_summary(outcome, args.summary)
    rss = "n/a" if outcome.peak_rss_mb is None else f"{outcome.peak_rss_mb:.0f} MiB"
    print(f"worker done: {len(outcome.completed)} cells run, {len(outcome.failed)} failed; peak RSS {rss}")
    return 0


def _status(args) -> int:
    from benchmark.paths import default_optuna_storage
    from benchmark.run.status import format_status, matrix_status

    print(format_status(matrix_status(args.storage or default_optuna_storage(), args.matrix_id)))
    return 0


def _report(args) -> int:
    from benchmark.paths import default_tracking_uri
    from benchmark.reporting import build_report

    tracking_uri = args.tracking_uri or default_tracking_uri()
    folder, text = build_report(tracking_uri, args.matrix_id)
    print(text)
    print(f"report written to {folder}")
    if not args.no_log:
        from benchmark.scale.tracking import MatrixTracker

        MatrixTracker(tracking_uri, folder.name, {}, "", create=False).log_artifacts(folder)
        print(f"and logged as artifacts 'report/' of the parent run of matrix {folder.name} in {tracking_uri}")
    return 0


def _cache(args) -> int:
    from benchmark.features import cache as feature_cache

    if args.action == "list":
        rows = feature_cache.list_entries()
        for row in rows:
            print(f"{row['key']}  {row['bytes'] / 2**20:8.1f} MiB  {row.get('dataset', '?')}/{row.get('split', '?')}/"
                  f"{row.get('modality', '?')}  {row.get('encoder', '?')}")
        print(f"{len(rows)} entries, {sum(r['bytes'] for r in rows) / 2**20:.1f} MiB in {feature_cache.cache_dir()}")
    else:
        count, size = feature_cache.clear()
        print(f"removed {count} cache files ({size / 2**20:.1f} MiB) from {feature_cache.cache_dir()}")
    return 0


def _perf(args) -> int:
    from benchmark.run.perf import main as perf_main

    import shlex

    args.bench_args = shlex.split(args.bench_args)
    if args.what == "scale":
        from benchmark.run.scale_check import parse_rows
        from strategies import get_strategy

        try:
            args.rows = parse_rows(args.rows)
        except ValueError as exc:
            print(f"fusebench perf scale: error: {exc}", file=sys.stderr)
            return 2
        for name, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size)):
            if value is not None and value <= 0:
                print(f"fusebench perf scale: error: {name}: expected a positive integer, got {value}", file=sys.stderr)
                return 2
        strategies = args.strategy or ["concat"]
        if len(strategies) > 1:
            print("fusebench perf scale: error: --strategy: perf scale times one strategy", file=sys.stderr)
            return 2
        args.strategy = strategies[0]
        if get_strategy(args.strategy).consumes_tokens:
            print(f"fusebench perf scale: error: --strategy: {args.strategy} consumes token sequences; perf scale "
                  f"generates pooled features, so it times pooled strategies (e.g. concat)", file=sys.stderr)
            return 2
        args.epochs, args.batch_size = args.epochs or 2, args.batch_size or 512
        return perf_main(args)
    args.strategy = args.strategy or ["concat", "cross_attention"]
    args.epochs, args.batch_size = args.epochs or 3, args.batch_size or 128
    return perf_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fusebench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("strategies", help="list registered fusion strategies (name, family, input, description)")
    p.add_argument("--plugin", action="append", help="also load strategies from this Python file")
    p.set_defaults(func=_strategies)

    sub.add_parser("datasets", help="list dataset cards in datasets/").set_defaults(func=_datasets)
    sub.add_parser("encoders", help="list registered encoders").set_defaults(func=_encoders)

    p = sub.add_parser("data", help="prepare the built-in offline datasets (no-op when ready)")
    p.add_argument("names", nargs="*", help="built-in dataset names (default: all)")
    p.set_defaults(func=_data)

    p = sub.add_parser("bench", help="run the benchmark matrix, log to MLflow, write the report")
    p.add_argument("--profile", default="default", help="profile name (smoke, default, full) or a YAML path")
    p.add_argument("--datasets", help="comma-separated dataset names or globs (overrides the profile)")
    p.add_argument("--strategies", help="comma-separated strategy names or globs (overrides the profile)")
    p.add_argument("--dropout", help="comma-separated training modality-dropout rates")
    p.add_argument("--seeds", help="comma-separated seeds")
    p.add_argument("--trials", type=int, help="Optuna trials per study")
    p.add_argument("--epochs", type=int, help="the epoch cap (training stops earlier on a validation plateau)")
    p.add_argument("--patience", type=int, help="epochs without a better validation score before training stops")
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--amp", choices=["off", "bf16", "fp16"],
                   help="mixed precision on CUDA (overrides the profile's `amp`; ignored on CPU)")
    p.add_argument("--no-stack", action="store_true", dest="no_stack",
                   help="train the seeds of a cell one by one instead of as one stacked computation")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlruns.db)")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///.fusebench/optuna.db)")
    p.add_argument("--plugin", action="append", help="load extra strategies from this Python file")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1; 0 = register the matrix and prepare data only)")
    p.add_argument("--dry-run", action="store_true", help="print the cells and a time estimate, run nothing")
    p.add_argument("--no-report", action="store_true", help="skip building the report at the end")
    p.add_argument("--summary", metavar="PATH",
                   help="also write the run's summary (cells run, skipped, failed; seconds per phase) as JSON to PATH")
    p.add_argument("--retry-failed", action="store_true",
                   help="run the cells that failed in an earlier run of this matrix again (default: keep them as failed)")
    p.set_defaults(func=_bench)

    p = sub.add_parser("worker", help="join a registered matrix (shared Optuna storage + tracking store) and work on it")
    p.add_argument("--storage", help="Optuna storage URL shared by all workers, e.g. postgresql://user:pw@host/db")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: the one the matrix was started with)")
    p.add_argument("--matrix-id", help="matrix to join (default: the newest registered)")
    p.add_argument("--device", default="auto",
                   help="cpu, cuda, cuda:1 ... (default auto: cuda when this worker's machine has one)")
    p.add_argument("--summary", metavar="PATH",
                   help="also write the worker's outcome (cells run, skipped, failed; seconds per phase; peak "
                        "resident memory) as JSON to PATH")
    p.set_defaults(func=_worker)

    p = sub.add_parser("status", help="progress of a registered matrix: units done, running (by which worker), failed")
    p.add_argument("--storage", help="Optuna storage URL the matrix was registered in (default: the local SQLite one)")
    p.add_argument("--matrix-id", help="matrix to show (default: the newest registered)")
    p.set_defaults(func=_status)

    p = sub.add_parser("report", help="rebuild the comparison report from the MLflow store")
    p.add_argument("--matrix-id", help="matrix to report on (default: the newest)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlruns.db)")
    p.add_argument("--no-log", action="store_true",
                   help="only write reports/<matrix id>/; do not log it as artifacts of the matrix's parent run")
    p.set_defaults(func=_report)

    p = sub.add_parser("perf", help="benchmarks that print figures: loop overhead, phase times, worker speed-up, "
                                    "budget regret, scaling with dataset size")
    p.add_argument("what", choices=("loop", "phases", "workers", "budget", "scale"))
    p.add_argument("--strategy", action="append",
                   help="(loop) strategy to time; repeatable (default: concat, cross_attention); "
                        "(scale) the one pooled strategy to train (default: concat)")
    p.add_argument("--rows", default="10000,100000,1000000",
                   help="(scale) comma-separated training-set sizes (default: 10000,100000,1000000)")
    p.add_argument("--dataset", default="noisy_mnist", help="(loop) dataset whose features are used")
    p.add_argument("--datasets", help="(budget) comma-separated datasets (default: the profile's)")
    p.add_argument("--strategies", help="(budget) comma-separated strategies or globs (default: the profile's)")
    p.add_argument("--seeds", help="(budget) comma-separated seeds (default: the profile's)")
    p.add_argument("--dropout", type=float, default=0.3, help="(budget) training modality dropout (default 0.3)")
    p.add_argument("--factor", type=int, default=5, help="(budget) how many times larger the second budget is")
    p.add_argument("--batch-size", type=int, dest="batch_size", help="(loop) default 128; (scale) default 512")
    p.add_argument("--epochs", type=int,
                   help="(loop) epochs per timed run, default 3; (scale) epochs per size, the first untimed, default 2")
    p.add_argument("--repeats", type=int, default=5, help="(loop) timed repetitions (median reported)")
    p.add_argument("--profile", default="default", help="(phases, workers, budget) profile to run")
    p.add_argument("--workers", type=int, default=2, help="(workers) worker count compared with 1")
    p.add_argument("--cold", action="store_true", help="(phases) also prepare data and encode features from scratch")
    p.add_argument("--device", default="auto")
    p.add_argument("--bench-args", dest="bench_args", default="",
                   help='(phases, workers) extra `bench` flags, quoted: --bench-args "--datasets noisy_mnist --seeds 0"')
    p.set_defaults(func=_perf)

    p = sub.add_parser("cache", help="list or clear the feature cache")
    p.add_argument("action", choices=("list", "clear"))
    p.set_defaults(func=_cache)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from benchmark.data.cards import CardError
    from benchmark.data.loading import DataError
    from benchmark.run.config import ProfileError
    from benchmark.scale.retry import StoreUnavailable
    from strategies.registry import RegistryError

    try:
        return args.func(args)
    except (CardError, ProfileError, DataError, RegistryError, FileNotFoundError, LookupError, StoreUnavailable) as exc:
        print(f"fusebench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fusebench: interrupted; finished cells are saved, re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
