"""A matrix run by Ray (benchmark/engine/ray_executor.py): `fusebench bench --workers N` (N >= 2) on a
local Ray instance, `--cluster ADDRESS` on an existing cluster.

The Plan's units become tasks: trial slot k of a study waits for slot k-1 (so each trial samples
and is pruned against the same earlier trials, however many processes run the matrix), and a study's
cells, grouped as the profile stacks them (the seeds of one dropout rate trained together), wait for
all its slots. Units already done in the stores are not submitted; each task checks the stores
again before it works (benchmark/run/unit_runner.py), so a re-run resumes and a task Ray runs twice
does its work once. Each task runs in a Ray worker process that builds the matrix's Plan once from its
configuration, checks the matrix id, and reads the store URLs from its environment."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from benchmark.engine.ray_executor import Resources, Task, ray_session, run_tasks
from benchmark.progress import MatrixDisplay
from benchmark.run.config import MatrixConfig
from benchmark.run.plan import Plan
from benchmark.run.store_progress import units_done
from benchmark.run.unit_runner import WORKER_TRACKING_ENV, MatrixOutcome, UnitRunner
from benchmark.run.units import CellUnit, TrialUnit
from benchmark.stores.database import open_storage
from benchmark.stores.retry import retry
from benchmark.tracking.mlflow_runs import MatrixTracker

STORAGE_ENV = "FUSEBENCH_OPTUNA_STORAGE"


# The default GPU share of a unit on a CUDA device, by what its units train (the largest of the
# matrix's kinds wins, since one share serves every unit): a fusion head on cached features is a
# model of at most a few million parameters, so four share a GPU; a stack of seeds is several such
# models in one step; a fine-tuned encoder trains a pretrained network. Chosen from model sizes,
# not yet measured on a GPU (docs/several-machines.md); --gpus-per-unit overrides it.
GPU_SHARE_HEAD, GPU_SHARE_STACK, GPU_SHARE_ENCODER = 0.25, 0.5, 1.0


def default_gpu_share(config: MatrixConfig) -> float:
    """The GPU share of each unit of ``config`` on a CUDA device (0 on a CPU)."""
    if not config.device.startswith("cuda"):
        return 0.0
    if any(mode != "frozen" for mode in config.finetune):
        return GPU_SHARE_ENCODER
    return GPU_SHARE_STACK if config.stack_seeds else GPU_SHARE_HEAD


def default_resources(config: MatrixConfig, cpus: float | None = None, gpus: float | None = None) -> Resources:
    """Each unit's resources: 1 CPU and, on a CUDA device, default_gpu_share (``cpus`` and ``gpus``,
    from --cpus-per-unit and --gpus-per-unit, override them); the bench's first line states them."""
    return Resources(cpus=1.0 if cpus is None else cpus, gpus=default_gpu_share(config) if gpus is None else gpus)


def cell_groups(plan: Plan, pending: set[str]) -> list[tuple[CellUnit, ...]]:
    """The pending cell units in groups that train together: with stacked seeds, the cells of one
    study at one dropout rate (under shared tuning a study holds several rates); else one each."""
    groups: dict[tuple, list[CellUnit]] = {}
    for unit in plan.cell_units:
        if unit.id in pending:
            key = (unit.study_key, unit.cell.dropout) if plan.config.stack_seeds else (unit.id,)
            groups.setdefault(key, []).append(unit)
    return [tuple(group) for group in groups.values()]


def plan_tasks(plan: Plan, done: set[str]) -> list[Task]:
    """The Ray tasks of the units of ``plan`` not in ``done``, each after the tasks it waits for:
    a trial slot after the study's previous pending slot, a cell group after all its study's pending
    slots."""
    pending = {u.id for u in plan.units} - done
    groups: dict[str, list[tuple[CellUnit, ...]]] = {}
    for group in cell_groups(plan, pending):
        groups.setdefault(group[0].study_key, []).append(group)
    tasks: list[Task] = []
    for study in plan.studies:
        slots = [unit for unit in study.trial_units if unit in pending]
        tasks += [Task(unit, (unit,), (slots[k - 1],) if k else ()) for k, unit in enumerate(slots)]
        tasks += [Task(group[0].id, tuple(u.id for u in group), tuple(slots)) for group in groups.get(study.key, [])]
    return tasks


@dataclass(frozen=True)
class PlanUnits:
    """Runs units of one matrix inside a Ray task: the picklable callable the executor ships. It
    carries the matrix's configuration and id and the unit's resources, never a store URL."""

    config: dict
    matrix_id: str
    resources: Resources

    def __call__(self, unit_ids: tuple[str, ...]) -> dict[str, Any]:
        started = time.time()
        runner = _runner_of(self)
        runner.outcome = MatrixOutcome(self.matrix_id, runner.outcome.parent_run_id)  # this task's own counts
        runner.phases = dict.fromkeys(runner.phases, 0.0)
        units = [runner.plan.unit(unit) for unit in unit_ids]
        if isinstance(units[0], TrialUnit):
            # A store that drops out mid-unit: back off and redo the unit (its own checks skip what was recorded).
            retry(lambda: runner.trial(units[0]), f"trial unit {units[0].id}")
        else:
            retry(lambda: runner.cells(units), f"cell unit {units[0].id}")
        outcome = runner.finish()
        return {"completed": len(outcome.completed), "reused": outcome.reused, "skipped": outcome.skipped,
                "failed": list(outcome.failed), "phase_seconds": outcome.phase_seconds,
                "peak_rss_mb": outcome.peak_rss_mb, "pid": os.getpid(), "started": started, "ended": time.time()}


# The UnitRunner of each matrix this Ray worker process ran a task of: Ray reuses a worker process
# for many tasks, and the runner keeps the Plan, the features and the store connections between them.
_RUNNERS: dict[str, UnitRunner] = {}


def _runner_of(units: PlanUnits) -> UnitRunner:
    if units.matrix_id not in _RUNNERS:
        import torch

        storage, tracking = os.environ.get(STORAGE_ENV), os.environ.get(WORKER_TRACKING_ENV) or os.environ.get(
            "MLFLOW_TRACKING_URI")
        if not storage or not tracking:
            raise RuntimeError(f"this Ray node has no store to write to: set {STORAGE_ENV} and {WORKER_TRACKING_ENV} "
                               f"(or MLFLOW_TRACKING_URI) in the environment of `ray start` on every node")
        device = "cuda" if units.resources.gpus > 0 and torch.cuda.is_available() else "cpu"  # what Ray assigned
        torch.set_num_threads(max(1, int(units.resources.cpus)))
        # a card given by path: the file there, or one with the same bytes in this node's cards folder
        plan = Plan.build(MatrixConfig.from_dict(units.config).localised().with_overrides(device=device))
        if plan.matrix_id != units.matrix_id:
            raise LookupError(f"matrix {units.matrix_id}: its inputs differ on this Ray node (a dataset card, an "
                              f"encoder version or a strategy's code is not the same here: computed id "
                              f"{plan.matrix_id}); give every node the same checkout and cards")
        _RUNNERS[units.matrix_id] = UnitRunner(plan, tracking, storage, f"ray-{os.uname().nodename}-{os.getpid()}")
    return _RUNNERS[units.matrix_id]


@dataclass
class RayRun:
    """What the driver learns from a matrix run on Ray: counts over the tasks, each worker process's
    peak memory, Ray's start-up time, and the tasks that did not finish (key -> error)."""

    completed: int = 0
    reused: int = 0
    skipped: int = 0  # cells found done: by the driver before submitting, or by a task
    start_seconds: float | None = None  # None when Ray was not started (nothing left to do)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    worker_peak_rss_mb: dict[int, float | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def run_on_ray(plan: Plan, tracking_uri: str, storage_url: str, resources: Resources, workers: int | None = None,
               address: str | None = None, retry_failed: bool = False,
               display: Callable[[Plan], MatrixDisplay] | None = None) -> RayRun:
    """Run the units of ``plan`` the stores do not hold yet as Ray tasks: on a local instance of
    ``workers`` CPUs, or on the cluster at ``address``. The store URLs reach a local instance's
    workers through their inherited environment; a cluster's nodes have their own."""
    tracker = MatrixTracker(tracking_uri, plan.matrix_id, {}, plan.config.device, create=False)
    done = units_done(plan, tracker, open_storage(storage_url), retry_failed)
    run = RayRun(skipped=sum(u.id in done for u in plan.cell_units))
    tasks = plan_tasks(plan, done)
    progress = display(plan) if display else MatrixDisplay({}, 0, quiet=True)
    with progress:
        progress.sync(done)
        if not tasks:
            return run
        environment = {} if address else {STORAGE_ENV: storage_url, WORKER_TRACKING_ENV: tracking_uri}
        with ray_session(workers, address, environment) as session:
            run.start_seconds = session.start_seconds

            def finished(task: Task, summary: dict[str, Any]) -> None:
                done.update(task.units)
                progress.sync(done)
                run.completed += summary["completed"] + summary["reused"]
                run.reused += summary["reused"]
                run.skipped += summary["skipped"]
                for phase, seconds in summary["phase_seconds"].items():
                    run.phase_seconds[phase] = run.phase_seconds.get(phase, 0.0) + seconds
                run.worker_peak_rss_mb[summary["pid"]] = summary["peak_rss_mb"]

            started = time.perf_counter()
            result = run_tasks(tasks, PlanUnits(asdict(plan.config), plan.matrix_id, resources), resources, finished)
            run.phase_seconds["ray_tasks"] = time.perf_counter() - started
        run.errors = result.errors
    return run
