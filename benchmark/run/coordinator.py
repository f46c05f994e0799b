"""`fusebench bench`: register a matrix, prepare data and features, run one in-process
worker or N worker processes, then build the report and close the parent run.
`fusebench worker`: join a registered matrix."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from benchmark.data.builtin import ensure_prepared
from benchmark.features.tensors import build_features
from benchmark.reporting import EmptyReport, build_report
from benchmark.run.config import MatrixConfig
from benchmark.run.finetune_axis import feature_key, modes_by_dataset
from benchmark.engine.ray_executor import Resources
from benchmark.run.plan import Plan
from benchmark.run.ray_bench import default_resources, run_on_ray
from benchmark.run.unit_runner import WORKER_TRACKING_ENV, MatrixOutcome  # noqa: F401 - re-exported for callers
from benchmark.run.worker import Worker, matrix_display
from benchmark.stores.database import mask_secrets, open_storage
from benchmark.stores.retry import retry
from benchmark.vocabulary import FINETUNE_FROZEN, TAG_ERROR, TAG_NOT_APPLICABLE
from benchmark.tracking.mlflow_runs import MatrixTracker
from benchmark.engine.workqueue import new_worker_id, open_queue
from benchmark.train.device import resolve_device


@dataclass
class BenchSummary:
    matrix_id: str
    cells: int
    completed: int = 0  # cells run now (trained, or copied from another matrix's run of the same cell)
    skipped: int = 0
    reused: int = 0  # of the completed: copied from a finished run of the same cell in another matrix
    failed: list[tuple[str, str]] = field(default_factory=list)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0
    # Peak resident memory (ru_maxrss, MiB) of each worker process; None where it could not be had.
    worker_peak_rss_mb: list[float | None] = field(default_factory=list)


def prepare_data(cards: dict, log: Callable[[str], None], max_tokens: int | None = None,
                 finetune: dict[str, set[str]] | None = None) -> tuple[dict, dict[str, float]]:
    """Prepare the matrix's datasets (dataset name -> card) and fill the feature cache; ``max_tokens``:
    the matrix's token budget; ``finetune``: dataset -> the fine-tuning modes its cells use (default:
    frozen only). -> (finetune_axis.feature_key -> FeatureSet, phase seconds)."""
    started = time.perf_counter()
    for card in cards.values():
        if card.source_kind == "builtin":
            ensure_prepared(card.source["builtin"], progress=log)
    data_s = time.perf_counter() - started
    features = {feature_key(name, mode): build_features(card, log=log, max_tokens=max_tokens, finetune=mode)
                for name, card in cards.items() for mode in sorted((finetune or {}).get(name, {FINETUNE_FROZEN}))}
    return features, {"data": data_s, "encoding": time.perf_counter() - started - data_s}


def run_bench(plan: Plan, tracking_uri: str, storage_url: str, workers: int = 1,
              log: Callable[[str], None] = print, retry_failed: bool = False, cluster: str | None = None,
              resources: Resources | None = None) -> BenchSummary:
    """Register the matrix of ``plan`` (built, and so checked against its cards, before anything is
    registered), prepare its data and run it: in this process (``workers`` 1), as Ray tasks on a local
    Ray instance of ``workers`` CPUs (2 or more) or on the Ray cluster at ``cluster`` (an address or
    ``auto``), each task declaring ``resources`` (default: ray_bench.default_resources); with
    ``workers`` 0 and no cluster, register and prepare only."""
    started = time.perf_counter()
    config, matrix_id = plan.config, plan.matrix_id
    queue = open_queue(storage_url)
    queue.register_matrix(matrix_id, asdict(config), tracking_uri, storage_url)
    open_storage(storage_url)  # create Optuna's tables once, before any worker races to do it
    tracker = retry(lambda: MatrixTracker(tracking_uri, matrix_id, asdict(config), config.device, create=True),
                    f"open tracking store {tracking_uri}")
    try:
        if cluster or workers >= 2:
            return _run_bench_on_ray(plan, tracking_uri, storage_url, workers, cluster, resources, log, retry_failed,
                                     tracker, started)
        return _run_bench(plan, tracking_uri, storage_url, workers, log, retry_failed, queue, tracker, started)
    except BaseException as exc:
        # Nothing may stay RUNNING: a bench that stops here (bad data, an interrupt) closes its parent run.
        _close_parent(tracker, exc)
        raise


def _close_parent(tracker: MatrixTracker, exc: BaseException) -> None:
    status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
    try:
        tracker.client.set_tag(tracker.parent_id, TAG_ERROR, f"{type(exc).__name__}: {exc}"[:4000])
        tracker.client.set_terminated(tracker.parent_id, status)
    except Exception:  # noqa: BLE001 - the original error matters more than a store that is also gone
        pass


def _record_not_applicable(plan: Plan, tracker: MatrixTracker, log: Callable[[str], None]) -> None:
    skipped = plan.not_applicable
    if skipped:  # strategies whose stated modality limit a dataset falls outside of: the report lists them
        for dataset, strategies in skipped.items():
            log(f"[{dataset}] not applicable: " + "; ".join(f"{s} ({why})" for s, why in strategies.items()))
        retry(lambda: tracker.client.set_tag(tracker.parent_id, TAG_NOT_APPLICABLE, json.dumps(skipped)[:7900]),
              "record the strategies that do not apply")


def _run_bench_on_ray(plan: Plan, tracking_uri: str, storage_url: str, workers: int, cluster: str | None,
                      resources: Resources | None, log: Callable[[str], None], retry_failed: bool,
                      tracker: MatrixTracker, started: float) -> BenchSummary:
    """The matrix's units as Ray tasks (benchmark/run/ray_bench.py); the stores say what is done."""
    summary = BenchSummary(plan.matrix_id, len(plan.cells))
    _record_not_applicable(plan, tracker, log)
    features, phases = prepare_data({name: plan.cards[name] for name in sorted({c.dataset for c in plan.cells})},
                                    log, plan.config.max_tokens, modes_by_dataset(plan.cells))
    summary.phase_seconds.update(phases)
    features.clear()  # the Ray workers read the filled cache; this process trains nothing
    release_memory()
    run = run_on_ray(plan, tracking_uri, storage_url, resources or default_resources(plan.config),
                     workers=None if cluster else workers, address=cluster, retry_failed=retry_failed,
                     display=matrix_display)
    if run.errors:
        first = next(iter(run.errors.items()))
        raise RuntimeError(f"{len(run.errors)} Ray tasks did not finish (first: {first[0]}: {first[1]}); "
                           "re-run the same bench to resume")
    if run.start_seconds is not None:  # None: everything was done already, Ray was not started
        summary.phase_seconds["ray_start"] = run.start_seconds
    summary.phase_seconds.update({k: v for k, v in run.phase_seconds.items() if k in ("tuning", "final_runs", "ray_tasks")})
    summary.completed, summary.skipped, summary.reused = run.completed, run.skipped, run.reused
    summary.worker_peak_rss_mb = list(run.worker_peak_rss_mb.values())
    summary.failed = list(tracker.failed_cells().values())
    summary.wall_seconds = time.perf_counter() - started
    return summary


def _run_bench(plan: Plan, tracking_uri: str, storage_url: str, workers: int, log: Callable[[str], None],
               retry_failed: bool, queue, tracker: MatrixTracker, started: float) -> BenchSummary:
    matrix_id = plan.matrix_id
    summary = BenchSummary(matrix_id, len(plan.cells))
    _record_not_applicable(plan, tracker, log)
    if retry_failed:
        failed_units = [plan.cell_unit_id(h) for h in tracker.failed_cells()]
        log(f"retrying {queue.reopen(matrix_id, failed_units)} failed cells")
    unrecorded = unrecorded_done_cells(plan, queue, tracker)
    if unrecorded:  # done means recorded: the queue's mark alone never stands for a result
        log(f"{queue.reopen(matrix_id, unrecorded)} cells marked done in the work queue have no run in the tracking "
            f"store this bench writes to: running them again")
    features, phases = prepare_data({name: plan.cards[name] for name in sorted({c.dataset for c in plan.cells})},
                                    log, plan.config.max_tokens, modes_by_dataset(plan.cells))
    summary.phase_seconds.update(phases)
    if workers == 0:  # register only: workers on this or other machines join with `fusebench worker`
        summary.wall_seconds = time.perf_counter() - started
        return summary
    # One worker, in this process (two or more run on Ray: _run_bench_on_ray).
    outcome = Worker(plan, tracking_uri, storage_url, queue, new_worker_id(), log, features=features).run()
    summary.completed, summary.skipped = len(outcome.completed) + outcome.reused, outcome.skipped
    summary.reused = outcome.reused
    summary.worker_peak_rss_mb = [outcome.peak_rss_mb]
    failed = tracker.failed_cells()
    summary.phase_seconds.update({"tuning": outcome.phase_seconds["tuning"],
                                  "final_runs": outcome.phase_seconds["final_runs"]})
    # Every failed cell of the matrix, this run's and earlier ones', as MLflow records them.
    summary.failed = list(failed.values())
    summary.wall_seconds = time.perf_counter() - started
    return summary


def release_memory() -> None:
    """Give back what encoding held before the workers start: the loaded encoder networks
    (model_cache), then the freed heap to the system. CPython and PyTorch free into glibc's heap,
    which keeps the pages; ``malloc_trim`` (glibc only; elsewhere skipped) returns them, so the
    coordinator holds its imports and stores while the workers train, not the encoders."""
    import ctypes
    import gc

    from benchmark.features import model_cache

    model_cache.clear()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def unrecorded_done_cells(plan: Plan, queue, tracker: MatrixTracker) -> list[str]:
    """Cell units the work queue (in the Optuna storage) marks done whose result this matrix's
    tracking store does not hold, finished or failed: e.g. the same matrix run before against
    another tracking store. They must run again (or be copied from another matrix of this store)."""
    done = queue.done_units(tracker.matrix_id)
    recorded_units = {plan.cell_unit_id(h) for h in tracker.ended_cells(include_failed=True) if h}
    return [u.id for u in plan.cell_units if u.id in done and u.id not in recorded_units]


def write_worker_summary(outcome: MatrixOutcome, path: str | Path) -> None:
    """A worker's outcome as JSON (cells run, skipped, failed; seconds per phase; peak resident
    memory in MiB), for the coordinator that spawned it and for scripts."""
    Path(path).write_text(json.dumps({
        "matrix_id": outcome.matrix_id, "completed": len(outcome.completed), "skipped": outcome.skipped,
        "reused": outcome.reused,
        "failed": [list(f) for f in outcome.failed], "phase_seconds": outcome.phase_seconds,
        "peak_rss_mb": outcome.peak_rss_mb}, indent=2, sort_keys=True))


def worker_config(registered: dict, device: str | None) -> MatrixConfig:
    """The registered matrix's configuration, on the device this worker resolves: ``auto`` (or
    nothing) means this machine's GPU when it has one, whatever the registering machine used."""
    return MatrixConfig.from_dict(registered["config"]).with_overrides(device=resolve_device(device))


def run_worker(storage_url: str, tracking_uri: str | None, matrix_id: str | None, device: str | None,
               log: Callable[[str], None] = print, search: tuple[str, ...] = ()) -> MatrixOutcome:
    """`fusebench worker`: join a registered matrix and work until it is done. Its card files are
    found by their registered path or, where that is missing here, by content among the cards
    folder and ``search`` (``--datasets``); a card file that differs stops the worker before it
    claims any work. The tracking URI: ``tracking_uri``, else $FUSEBENCH_WORKER_TRACKING_URI (set
    by the bench), else the one the matrix was registered with."""
    import torch

    queue = open_queue(storage_url)
    registered = queue.matrix(matrix_id)
    config = worker_config(registered, device).localised(search)
    plan = Plan.build(config)  # this machine's own Plan, checked against its cards before it claims any work
    here = plan.matrix_id
    if here != registered["matrix_id"]:
        raise LookupError(f"matrix {registered['matrix_id']}: its inputs differ on this machine (a dataset card, an "
                          f"encoder version or a strategy's code is not the same here: computed id {here}); use the "
                          f"same checkout and cards as the registering machine")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    worker_id = new_worker_id()
    log(f"worker {worker_id} joined matrix {registered['matrix_id']} on {config.device}")
    tracking_uri = tracking_uri or os.environ.get(WORKER_TRACKING_ENV) or registered["tracking_uri"]
    return Worker(plan, tracking_uri, storage_url, queue, worker_id, log).run()


def finish_bench(summary: BenchSummary, tracking_uri: str, device: str, report: bool = True,
                 log: Callable[[str], None] = print) -> Path | None:
    """After the workers: build the report from the tracking store and log it as artifacts of
    the matrix's parent run (unless ``report`` is false), then record the phase times and close
    the parent run. Returns the report folder."""
    tracker = MatrixTracker(tracking_uri, summary.matrix_id, {}, device, create=False)
    folder = None
    if report:
        started = time.perf_counter()
        try:
            folder, text = build_report(tracking_uri, summary.matrix_id)
        except EmptyReport as exc:  # every cell failed: no report, reports/latest left as it was
            log(mask_secrets(f"no report: {exc}"))
        else:
            tracker.log_artifacts(folder)
            log(text)
            log(f"report written to {folder}")
        summary.phase_seconds["report"] = time.perf_counter() - started
    summary.wall_seconds += summary.phase_seconds.get("report", 0.0)
    tracker.finish_matrix({f"phase_seconds.{k}": v for k, v in summary.phase_seconds.items()}
                          | {"wall_seconds": summary.wall_seconds, "failed_cells": len(summary.failed)})
    return folder


def format_worker_rss(values: list[float | None]) -> str:
    """Peak resident memory per worker for the bench summary line, "n/a" where unknown."""
    return ", ".join("n/a" if v is None else f"{v:.0f} MiB" for v in values) or "n/a"


def write_summary(summary: BenchSummary, path: str | Path) -> None:
    """The bench summary as JSON (cells run, skipped, failed; seconds per phase; peak resident
    memory per worker, null where unknown) for scripts."""
    Path(path).write_text(json.dumps(asdict(summary), indent=2, sort_keys=True))
