"""`fusebench bench`: register a matrix, take its driver lock, prepare data and features, run its
units in this process or as Ray tasks, then build the report and close the parent run."""

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
from benchmark.run.finetune_axis import feature_key, modes_by_dataset
from benchmark.engine.ray_executor import Resources
from benchmark.run.in_process import matrix_display, run_in_process
from benchmark.run.plan import Plan
from benchmark.run.ray_bench import default_resources, run_on_ray
from benchmark.run.unit_runner import WORKER_TRACKING_ENV, MatrixOutcome  # noqa: F401 - re-exported for callers
from benchmark.stores.database import mask_secrets, open_storage
from benchmark.stores.driver_lock import DriverLock, MatrixBusy  # noqa: F401 - MatrixBusy re-exported for callers
from benchmark.stores.matrix_registry import MatrixRegistry
from benchmark.stores.retry import retry
from benchmark.vocabulary import FINETUNE_FROZEN, TAG_ERROR, TAG_NOT_APPLICABLE
from benchmark.tracking.mlflow_runs import MatrixTracker


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
    registered), take its driver lock (MatrixBusy when another live bench drives it), prepare its data
    and run it: in this process (``workers`` 1), as Ray tasks on a local Ray instance of ``workers``
    CPUs (2 or more) or on the Ray cluster at ``cluster`` (an address or ``auto``), each task declaring
    ``resources`` (default: ray_bench.default_resources); with ``workers`` 0 and no cluster, register
    and prepare only."""
    started = time.perf_counter()
    config, matrix_id = plan.config, plan.matrix_id
    MatrixRegistry(storage_url).register(matrix_id, asdict(config), tracking_uri, storage_url)
    with DriverLock(storage_url, matrix_id) as lock:  # before the parent run is touched: a refused bench changes nothing
        if lock.took_over is not None:
            log(f"taking over matrix {matrix_id} from {lock.took_over.driver} (no heartbeat for "
                f"{lock.took_over.age_s():.0f}s); resuming from the stores")
        open_storage(storage_url)  # create Optuna's tables once, before any Ray worker races to do it
        tracker = retry(lambda: MatrixTracker(tracking_uri, matrix_id, asdict(config), config.device, create=True),
                        f"open tracking store {tracking_uri}")
        if retry_failed:
            log(f"retrying {len(tracker.failed_cells())} failed cells")
        try:
            if cluster or workers >= 2:
                return _run_bench_on_ray(plan, tracking_uri, storage_url, workers, cluster, resources, log,
                                         retry_failed, tracker, started)
            return _run_bench(plan, tracking_uri, storage_url, workers, log, retry_failed, tracker, started)
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
               retry_failed: bool, tracker: MatrixTracker, started: float) -> BenchSummary:
    summary = BenchSummary(plan.matrix_id, len(plan.cells))
    _record_not_applicable(plan, tracker, log)
    features, phases = prepare_data({name: plan.cards[name] for name in sorted({c.dataset for c in plan.cells})},
                                    log, plan.config.max_tokens, modes_by_dataset(plan.cells))
    summary.phase_seconds.update(phases)
    if workers == 0:  # register and prepare only: a later bench (here or with --cluster) runs it
        summary.wall_seconds = time.perf_counter() - started
        return summary
    # One process: this one (two or more run on Ray: _run_bench_on_ray).
    outcome = run_in_process(plan, tracking_uri, storage_url, log, retry_failed, features)
    summary.completed, summary.skipped = len(outcome.completed) + outcome.reused, outcome.skipped
    summary.reused = outcome.reused
    summary.worker_peak_rss_mb = [outcome.peak_rss_mb]
    summary.phase_seconds.update({"tuning": outcome.phase_seconds["tuning"],
                                  "final_runs": outcome.phase_seconds["final_runs"]})
    # Every failed cell of the matrix, this run's and earlier ones', as MLflow records them.
    summary.failed = list(tracker.failed_cells().values())
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
