"""`fusebench` command line: list strategies and datasets, prepare data, run the matrix,
build reports and manage the feature cache."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``fusebench bench: error: argument --seeds: expected ...``
    (exit status 2), not the usage block first."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _flag(parse, name: str):
    """An argparse ``type=`` from a parser of benchmark/run/config.py that raises ValueError, so
    the CLI and the profile fields follow the same rules."""
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name
    return convert


class _Entries(argparse.Action):
    """``--datasets a,b`` or ``--datasets cards/*.yaml`` expanded by the shell into several
    arguments: one flat tuple of entries."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, tuple(dict.fromkeys(e for value in values for e in value)))


def _count(low: int):
    from benchmark.run.config import parse_count

    return _flag(lambda text: parse_count(text, low), f"integer >= {low}")


def _share(low: float, what: str):
    """A resource share per unit (``--cpus-per-unit``, ``--gpus-per-unit``): a number >= ``low``."""
    def read(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not low <= value < float("inf"):
            raise ValueError(f"expected {what} >= {low:g}; got {text!r}")
        return value

    return _flag(read, f"{what} >= {low:g}")


def _override(field: str, read=None):
    """An argparse ``type=`` for a flag that overrides profile field ``field``: ``read`` turns the text
    into the value a profile would hold (comma-separated lists, numbers), and the profile model checks
    it (benchmark/run/profile_model.py), so a flag, a profile and the API share each limit and its
    wording. Checked when parsed: a bad flag stops before anything is read or written."""
    from benchmark.run.profile_model import check_field

    return _flag(lambda text: check_field(field, read(text) if read else text), field)


# `fusebench bench` flags that override a profile field: (flag, argparse dest, profile field).
BENCH_OVERRIDES = (("--datasets", "datasets", "datasets"), ("--strategies", "strategies", "strategies"),
                   ("--dropout", "dropout", "dropout_rates"), ("--seeds", "seeds", "seeds"),
                   ("--trials", "trials", "trials"), ("--epochs", "epochs", "epochs"),
                   ("--batch-size", "batch_size", "batch_size"), ("--patience", "patience", "patience"),
                   ("--amp", "amp", "amp"), ("--stack", "stack_seeds", "stack_seeds"),
                   ("--missing-inputs", "missing_inputs", "missing_inputs"), ("--folds", "folds", "folds"),
                   ("--finetune", "finetune", "finetune"))


def _device(text: str) -> str:
    """``--device`` (bench, perf): checked when parsed, on this machine (train/device.py)."""
    from benchmark.train.device import parse_device

    return _flag(parse_device, "device")(text)


def _storage(args, connect: bool = True) -> str:
    """The Optuna storage URL: ``--storage`` or the default, normalised and checked before anything
    is opened (stores/database.py), then (with ``connect``) reached (``_reached``)."""
    from benchmark.stores.database import checked_storage_url

    url = checked_storage_url(args.storage, "--storage")
    return _reached(url, "--storage") if connect else url


def _tracking_uri(args, connect: bool = True) -> str:
    """The MLflow tracking URI: ``--tracking-uri`` or the default, normalised and checked, then (with
    ``connect``) reached (``_reached``)."""
    from benchmark.stores.database import checked_tracking_uri

    uri = checked_tracking_uri(args.tracking_uri, "--tracking-uri")
    return _reached(uri, "--tracking-uri") if connect else uri


def _reached(url: str, flag: str) -> str:
    from benchmark.stores.retry import reached

    return reached(url, flag)


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
        print(f"{name:<20} {card.source_kind:<8} {card.task:<11} {card.ranking_metric:<9} [{mods}] {card.description}")
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
    """The MatrixConfig of `bench`'s profile and flags (checked by the profile model; against its
    cards when its Plan is built, ``_matrix_plan``)."""
    from benchmark.run.config import load_profile
    from benchmark.train.device import resolve_device

    flags = {field: flag for flag, _, field in BENCH_OVERRIDES}
    overrides = {field: getattr(args, dest) for _, dest, field in BENCH_OVERRIDES
                 if getattr(args, dest, None) is not None}
    # the profile model checks the flags' values as it checked the profile's (card paths: relative to here)
    config = load_profile(args.profile).overridden(overrides, lambda field: flags.get(field, field))
    config = config.with_overrides(device=resolve_device(args.device),
                                   plugins=tuple(args.plugin) if args.plugin else None)
    return config.pinned()  # the sha256 of each card file named by path, checked by every Ray worker


def _matrix_plan(args):
    """The Plan of `bench`'s matrix, built once for the command; a value the cards refuse names its
    flag, or the profile's field when no flag gave it."""
    from benchmark.run.config import profile_path
    from benchmark.run.plan import Plan

    flags = {field: flag for flag, dest, field in BENCH_OVERRIDES if getattr(args, dest, None) is not None}
    return Plan.build(_matrix_config(args),
                      lambda field: flags.get(field) or f"{profile_path(args.profile)}: field '{field}'")


def _bench(args) -> int:
    from benchmark.run.coordinator import finish_bench, format_worker_rss, run_bench, write_summary
    from benchmark.stores.database import mask_secrets

    plan = _matrix_plan(args)
    config, cells = plan.config, plan.cells
    if args.dry_run:
        from benchmark.run.estimate import estimate_seconds

        if args.tracking_uri:  # a dry run opens no store, but a flag that can never work is still refused
            _tracking_uri(args, connect=False)
        if args.storage:
            _storage(args, connect=False)
        for cell in cells:
            print(cell.label())
        seconds = estimate_seconds(plan, workers=max(1, args.workers))
        print(f"{len(cells)} cells, {len(plan.studies)} Optuna studies x {plan.trial_slots_per_study} trials; "
              f"estimated time on "
              f"{config.device} with {args.workers} worker(s): {seconds / 60:.1f} min (rough: features not cached "
              "yet, an otherwise idle machine; see benchmark/run/estimate.py)")
        return 0
    tracking_uri, storage = _tracking_uri(args, connect=False), _storage(args, connect=False)
    _reached(tracking_uri, "--tracking-uri")  # both checked (above) before waiting on either
    _reached(storage, "--storage")
    _check_folders(reports=not args.no_report and args.workers > 0)
    resources, executor = None, f"workers {args.workers}"
    if args.cluster or args.workers >= 2:  # Ray runs the units (benchmark/run/ray_bench.py)
        from benchmark.run.ray_bench import default_resources

        resources = default_resources(config, args.cpus_per_unit, args.gpus_per_unit)
        where = f"Ray cluster {args.cluster}" if args.cluster else f"local Ray, {args.workers} CPUs"
        executor = f"{where}, {resources.describe()}"
    print(mask_secrets(f"fusebench bench: profile {config.name}, matrix {plan.matrix_id}, {len(cells)} cells, "
                       f"device {config.device}, {executor}, tracking {tracking_uri}, optuna {storage}"))
    summary = run_bench(plan, tracking_uri, storage, workers=args.workers, retry_failed=args.retry_failed,
                        cluster=args.cluster, resources=resources)
    if args.workers == 0 and not args.cluster:
        print(f"matrix {summary.matrix_id} registered and its data prepared; run it with the same `fusebench bench` "
              "and --workers N (this machine) or --cluster ADDRESS (a Ray cluster)")
        return 0
    finish_bench(summary, tracking_uri, config.device, report=not args.no_report)
    if args.summary:
        write_summary(summary, args.summary)
    phases = ", ".join(f"{k} {v:.1f}s" for k, v in summary.phase_seconds.items())
    reused = f" ({summary.reused} of them copied from earlier matrices)" if summary.reused else ""
    print(f"matrix {summary.matrix_id}: {summary.cells} cells: {summary.completed} run now{reused}, {summary.skipped} "
          f"already done, {len(summary.failed)} failed; wall time {summary.wall_seconds:.1f}s ({phases})")
    print(f"peak RSS per worker: {format_worker_rss(summary.worker_peak_rss_mb)}")
    for label, error in summary.failed:
        print(f"  failed: {label}: {error}")
    if summary.failed:
        print("  failed cells are kept as failed runs in MLflow; re-run with --retry-failed to try them again")
    if summary.cells and len(summary.failed) >= summary.cells:  # nothing to compare: the run did not succeed
        print(f"fusebench: error: every cell of matrix {summary.matrix_id} failed ({len(summary.failed)} of "
              f"{summary.cells}; errors above)", file=sys.stderr)
        return 1
    return 0


def _check_folders(reports: bool) -> None:
    """The folders a run writes to (its state folder, the feature cache; reports when one will be
    written) exist or can be made, and take a file: checked before anything is registered."""
    from benchmark.paths import cache_dir, env_or, reports_dir, state_dir, writable_folder

    writable_folder(state_dir(), env_or("FUSEBENCH_HOME", "fusebench's state folder"))
    writable_folder(cache_dir(), env_or("FUSEBENCH_CACHE", "the feature cache folder"))
    if reports:
        writable_folder(reports_dir(), env_or("FUSEBENCH_REPORTS", "the reports folder"))


def _status(args) -> int:
    from benchmark.run.status import format_status, matrix_status, matrix_with_datasets

    storage, matrix_id, search = _storage(args), args.matrix_id, args.datasets or ()
    if args.datasets:
        matrix_id = matrix_with_datasets(storage, _dataset_names(args.datasets), matrix_id, search)
    print(format_status(matrix_status(storage, matrix_id, search=search)))
    return 0


def _dataset_names(entries: tuple[str, ...]) -> list[str]:
    """The dataset names that ``--datasets`` entries (names, globs, card paths) stand for."""
    from benchmark.run.card_files import matrix_cards, normalise_entries

    return list(matrix_cards(normalise_entries(entries, Path.cwd(), "--datasets")))


def _matrix_with_runs_of(tracking_uri: str, names: list[str], matrix_id: str | None) -> str:
    """The newest matrix in the tracking store with cell runs of every dataset in ``names`` (or
    check that ``matrix_id`` has them)."""
    from mlflow.tracking import MlflowClient

    from benchmark.vocabulary import EXPERIMENT, TAG_KIND, TAG_MATRIX

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        raise LookupError(f"no '{EXPERIMENT}' experiment in tracking store {tracking_uri}; run `fusebench bench` first")
    query = f"tags.`{TAG_KIND}` = 'matrix'" + (f" and tags.`{TAG_MATRIX}` = '{matrix_id}'" if matrix_id else "")
    for parent in client.search_runs([experiment.experiment_id], query, order_by=["attributes.start_time DESC"]):
        mid = parent.data.tags.get(TAG_MATRIX)
        if all(client.search_runs([experiment.experiment_id], f"tags.`{TAG_MATRIX}` = '{mid}' and "
                                  f"tags.`{TAG_KIND}` = 'cell' and tags.dataset = '{name}'", max_results=1)
               for name in names):
            return mid
    which = f"matrix {matrix_id} has" if matrix_id else "no matrix in the tracking store has"
    raise LookupError(f"--datasets: {which} runs of the dataset(s) {', '.join(names)} ({tracking_uri})")


def _report(args) -> int:
    from benchmark.reporting import build_report

    tracking_uri = _tracking_uri(args)
    matrix_id = args.matrix_id
    if args.datasets:
        matrix_id = _matrix_with_runs_of(tracking_uri, _dataset_names(args.datasets), matrix_id)
    folder, text = build_report(tracking_uri, matrix_id)
    print(text)
    print(f"report written to {folder}")
    if not args.no_log:
        from benchmark.tracking.mlflow_runs import MatrixTracker

        MatrixTracker(tracking_uri, folder.name, {}, "", create=False).log_artifacts(folder)
        from benchmark.stores.database import mask_secrets

        print(f"and logged as artifacts 'report/' of the parent run of matrix {folder.name} in "
              f"{mask_secrets(tracking_uri)}")
    return 0


def _ui(args) -> int:
    from benchmark.paths import reports_dir
    from benchmark.tracking import ui
    from benchmark.stores.database import mask_secrets

    tracking_uri = _tracking_uri(args)
    if args.screenshot is not None:
        url, png = ui.check_ui(tracking_uri, Path(args.screenshot or reports_dir() / "mlflow_ui.png"))
        print(f"runs page {url} (served by `mlflow ui` for the check, now stopped)\nscreenshot saved to {png}")
        return 0
    print(f"MLflow UI, fusebench runs: {ui.runs_page_url(tracking_uri, args.host, args.port)}\n"
          f"  with fusebench's columns: {ui.runs_page_url(tracking_uri, args.host, args.port, columns=True)}\n"
          f"  (tracking store: {mask_secrets(tracking_uri)})", flush=True)
    if args.print_url:
        return 0
    return ui.serve(tracking_uri, args.host, args.port)  # Ctrl-C or SIGTERM stops it and its server: a normal end


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
    from benchmark.perf.commands import main as perf_main

    import shlex

    args.bench_args = shlex.split(args.bench_args)
    if args.what == "scale":
        from benchmark.perf.scale_check import parse_rows
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


VERBOSE_HELP = ("also show third-party output: Hugging Face progress bars (datasets, model loading), library logs "
                "and warnings (default: only fusebench's own progress and results)")


def build_parser() -> argparse.ArgumentParser:
    from benchmark.run.config import parse_names, parse_output_path, parse_rates, parse_seeds, read_integer
    from benchmark.run.finetune_axis import parse_finetune
    from benchmark.run.missing_axis import parse_missing_inputs
    from benchmark.train.precision import AMP_MODES

    names, rates, seeds = (_flag(parse_names, "names"), _override("dropout_rates", parse_rates),
                           _override("seeds", parse_seeds))
    output = _flag(parse_output_path, "output path")
    missing = _override("missing_inputs", parse_missing_inputs)
    finetune = _override("finetune", parse_finetune)
    parser = _Parser(prog="fusebench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("strategies", help="list registered fusion strategies (name, family, input, description)")
    p.add_argument("--plugin", action="append", help="also load strategies from this Python file")
    p.set_defaults(func=_strategies)

    sub.add_parser("datasets", help="list dataset cards in datasets/").set_defaults(func=_datasets)
    sub.add_parser("encoders", help="list registered encoders").set_defaults(func=_encoders)

    p = sub.add_parser("data", help="prepare the built-in offline datasets (no-op when ready)")
    p.add_argument("names", nargs="*", help="built-in dataset names (default: all)")
    p.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    p.set_defaults(func=_data)

    p = sub.add_parser("bench", help="run the benchmark matrix, log to MLflow, write the report")
    p.add_argument("--profile", default="default", help="profile name (smoke, default, full) or a YAML path")
    p.add_argument("--datasets", type=names, nargs="+", action=_Entries,
                   help="comma-separated dataset names, globs, card paths or card globs such as 'cards/*.yaml' "
                        "(overrides the profile; relative paths resolve against the current folder)")
    p.add_argument("--strategies", type=names, help="comma-separated strategy names or globs (overrides the profile)")
    p.add_argument("--dropout", type=rates, help="comma-separated training modality-dropout rates in [0, 1); "
                   "per-modality rates join modality=rate with colons, e.g. 0,0.3,image=0.5:text=0.1")
    p.add_argument("--missing-inputs", type=missing, dest="missing_inputs",
                   help="comma-separated ways to fill an absent modality: zero (zero-fill + presence mask, the "
                        "default), learned (a trained vector per modality; adds <strategy>@learned variants)")
    p.add_argument("--finetune", type=finetune, dest="finetune",
                   help="comma-separated ways to use the pretrained encoders: frozen (cached features, the default), "
                        "last_block (train their last block; adds <strategy>@last_block variants), full (train them "
                        "whole on raw inputs, for a GPU; adds <strategy>@full)")
    p.add_argument("--seeds", type=seeds, help="comma-separated integer seeds, e.g. 0,1,2")
    p.add_argument("--trials", type=_override("trials", read_integer), help="Optuna trials per study (>= 0)")
    p.add_argument("--epochs", type=_override("epochs", read_integer),
                   help="the epoch cap (training stops earlier on a validation plateau)")
    p.add_argument("--patience", type=_override("patience", read_integer),
                   help="epochs without a better validation score before training stops")
    p.add_argument("--batch-size", type=_override("batch_size", read_integer), dest="batch_size",
                   help="training batch size (>= 1; overrides the profile's `batch_size`)")
    p.add_argument("--device", type=_device, default="auto",
                   help="auto, cpu, cuda, cuda:1 ... (default auto: cuda when available)")
    p.add_argument("--amp", type=_override("amp"), metavar="{" + ",".join(AMP_MODES) + "}",
                   help="mixed precision on CUDA (overrides the profile's `amp`; ignored on CPU)")
    p.add_argument("--folds", type=_override("folds", read_integer),
                   help="k-fold cross-validation (K >= 2) on every dataset instead of its fixed split "
                        "(overrides the profile's and the cards' `folds`)")
    p.add_argument("--stack", action=argparse.BooleanOptionalAction, dest="stack_seeds", default=None,
                   help="train the seeds of a cell as one stacked computation (pays on a GPU; on a CPU it is "
                        "slower per model, so the CPU profiles leave it off), or --no-stack: one by one "
                        "(default: the profile's `stack_seeds`)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlruns.db)")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///.fusebench/optuna.db)")
    p.add_argument("--plugin", action="append", help="load extra strategies from this Python file")
    p.add_argument("--workers", type=_count(0), default=1,
                   help="parallel units on this machine (default 1: in this process; 2 or more: a local Ray instance "
                        "of that many CPUs runs the units as tasks; 0 = register the matrix and prepare data only)")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="run the units on an existing Ray cluster (its address, or auto: the cluster this machine "
                        "is a node of); its nodes need the same checkout and cards, and the store URLs in "
                        "$FUSEBENCH_OPTUNA_STORAGE and $FUSEBENCH_WORKER_TRACKING_URI (docs/)")
    p.add_argument("--cpus-per-unit", type=_share(0.01, "a number of CPUs"), dest="cpus_per_unit",
                   help="(Ray) CPUs each unit declares (default 1)")
    p.add_argument("--gpus-per-unit", type=_share(0.0, "a share of a GPU"), dest="gpus_per_unit",
                   help="(Ray) GPUs each unit declares; fractions pack units on a GPU (default on a CUDA device: 0.25 "
                        "for fusion heads on cached features, 0.5 with stacked seeds, 1 with fine-tuned encoders; "
                        "else 0)")
    p.add_argument("--dry-run", action="store_true", help="print the cells and a time estimate, run nothing")
    p.add_argument("--no-report", action="store_true", help="skip building the report at the end")
    p.add_argument("--summary", metavar="PATH", type=output,
                   help="also write the run's summary (cells run, skipped, failed; seconds per phase) as JSON to PATH")
    p.add_argument("--retry-failed", action="store_true",
                   help="run the cells that failed in an earlier run of this matrix again (default: keep them as failed)")
    p.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    p.set_defaults(func=_bench)

    p = sub.add_parser("status", help="progress of a registered matrix from its stores: units done, cells running, "
                                      "failed, and the bench that drives it")
    p.add_argument("--storage", help="Optuna storage URL the matrix was registered in (default: the local SQLite one)")
    p.add_argument("--matrix-id", help="matrix to show (default: the newest registered)")
    p.add_argument("--datasets", type=names, nargs="+", action=_Entries,
                   help="show the newest matrix with these datasets (names, globs or card paths); also where to look "
                        "for its card files when their registered paths do not exist here")
    p.set_defaults(func=_status)

    p = sub.add_parser("report", help="rebuild the comparison report from the MLflow store")
    p.add_argument("--matrix-id", help="matrix to report on (default: the newest)")
    p.add_argument("--datasets", type=names, nargs="+", action=_Entries,
                   help="report on the newest matrix with runs of these datasets (names, globs or card paths)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlruns.db)")
    p.add_argument("--no-log", action="store_true",
                   help="only write reports/<matrix id>/; do not log it as artifacts of the matrix's parent run")
    p.set_defaults(func=_report)

    p = sub.add_parser("perf", help="benchmarks that print figures: loop overhead, phase times, worker speed-up, "
                                    "budget regret, scaling with dataset size, audio encoders on real speech")
    p.add_argument("what", choices=("loop", "phases", "workers", "budget", "scale", "audio", "fidelity"),
                   help="which benchmark: loop (ms per training step vs a bare PyTorch loop), phases (wall time "
                        "per bench phase), workers (speed-up of N workers over 1), budget (budget regret), scale "
                        "(time and memory per training-set size), audio (linear probe of the audio encoders on "
                        "real speech), fidelity (the profile's verdict against the reference protocol's)")
    p.add_argument("--encoders", type=names, default=("mfcc", "log_mel", "aisfx"),
                   help="(audio) comma-separated audio encoders to probe (default: mfcc,log_mel,aisfx)")
    p.add_argument("--strategy", action="append",
                   help="(loop) strategy to time; repeatable (default: concat, cross_attention); "
                        "(scale) the one pooled strategy to train (default: concat)")
    p.add_argument("--rows", default="10000,100000,1000000",
                   help="(scale) comma-separated training-set sizes (default: 10000,100000,1000000)")
    p.add_argument("--dataset", default="noisy_mnist", help="(loop) dataset whose features are used")
    p.add_argument("--datasets", type=names,
                   help="(budget, fidelity) comma-separated datasets (default: the profile's)")
    p.add_argument("--strategies", type=names,
                   help="(budget, fidelity) comma-separated strategies or globs (default: the profile's)")
    p.add_argument("--seeds", type=seeds,
                   help="(budget, fidelity) comma-separated integer seeds (default: the profile's)")
    p.add_argument("--tracking-uri", help="(fidelity) MLflow tracking URI (default: $MLFLOW_TRACKING_URI or "
                                          "sqlite:///mlruns.db)")
    p.add_argument("--storage", help="(fidelity) Optuna storage URL (default: sqlite:///.fusebench/optuna.db)")
    p.add_argument("--noise-floor", action="store_true", dest="noise_floor",
                   help="(fidelity) also rerun the profile with another draw of the tuning randomness and print how "
                        "far tuning luck alone moves the figures")
    p.add_argument("--dropout", type=float, default=0.3, help="(budget) training modality dropout (default 0.3)")
    p.add_argument("--missing-inputs", type=missing, dest="missing_inputs",
                   help="(budget) comma-separated missing-input techniques: zero, learned (default: the profile's)")
    p.add_argument("--factor", type=int, default=5, help="(budget) how many times larger the second budget is")
    p.add_argument("--batch-size", type=int, dest="batch_size", help="(loop) default 128; (scale) default 512")
    p.add_argument("--epochs", type=int,
                   help="(loop) epochs per timed run, default 3; (scale) epochs per size, the first untimed, default 2")
    p.add_argument("--repeats", type=_count(1), default=5, help="(loop) timed repetitions (median reported)")
    p.add_argument("--profile", default="default", help="(phases, workers, budget, fidelity) profile to run")
    p.add_argument("--workers", type=_count(1), default=2,
                   help="(workers) worker count compared with 1; (fidelity) workers of each run")
    p.add_argument("--cold", action="store_true", help="(phases) also prepare data and encode features from scratch")
    p.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda, cuda:1 ... (default auto)")
    p.add_argument("--bench-args", dest="bench_args", default="",
                   help='(phases, workers) extra `bench` flags, quoted: --bench-args "--datasets noisy_mnist --seeds 0"')
    p.set_defaults(func=_perf)

    p = sub.add_parser("ui", help="print the address of the fusebench runs page and start the MLflow UI")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlruns.db)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address the MLflow UI binds and the printed address names (default 127.0.0.1)")
    p.add_argument("--port", type=_count(1), default=5000, help="port of the MLflow UI (default 5000)")
    p.add_argument("--print-url", action="store_true", dest="print_url", help="print the runs-page address only")
    p.add_argument("--screenshot", metavar="PNG", nargs="?", const="",
                   help="check the UI in a browser: start `mlflow ui` on a free port, load the runs page in headless "
                        "Chromium, save a screenshot (default <reports>/mlflow_ui.png), stop the server")
    p.set_defaults(func=_ui)

    p = sub.add_parser("cache", help="list or clear the feature cache")
    p.add_argument("action", choices=("list", "clear"),
                   help="list: each cached entry (key, size, dataset/split/modality, encoder) and the total; "
                        "clear: delete every cached entry")
    p.set_defaults(func=_cache)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from benchmark.quiet import configure

    configure(verbose=getattr(args, "verbose", False))  # third-party bars, logs and warnings off unless --verbose
    from benchmark.data.cards import CardError
    from benchmark.data.loading import DataError
    from benchmark.paths import FolderError
    from benchmark.run.config import ProfileError
    from benchmark.stores.database import StoreURLError, mask_secrets
    from benchmark.stores.driver_lock import MatrixBusy
    from benchmark.stores.retry import StoreUnavailable
    from strategies.registry import RegistryError

    try:
        return args.func(args)
    except (CardError, ProfileError, DataError, RegistryError, FileNotFoundError, LookupError, StoreUnavailable,
            StoreURLError, FolderError, MatrixBusy) as exc:
        print(f"fusebench: error: {mask_secrets(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fusebench: interrupted; finished cells are saved, re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
