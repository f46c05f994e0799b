"""`fusebench status`: how far a registered matrix has got, read from the shared work queue
(the Optuna database) and from the stores themselves (finished trials in Optuna, finished and failed
cells in MLflow: what a Ray run leaves, benchmark/run/store_progress.py). Useful while
workers on several machines share one matrix."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from benchmark.run.config import MatrixConfig
from benchmark.run.plan import Plan
from benchmark.run.units import TrialUnit
from benchmark.run.store_progress import units_done
from benchmark.stores.database import mask_secrets, open_storage
from benchmark.vocabulary import dropout_label
from benchmark.tracking.mlflow_runs import MatrixTracker
from benchmark.engine.workqueue import open_queue, worker_process_gone


@dataclass
class RunningUnit:
    unit: str
    label: str
    worker: str
    seconds_left: float  # of the lease; negative = expired, waiting to be taken over
    dead: bool = False  # its worker ran on this machine and its process is gone


@dataclass
class MatrixStatus:
    matrix_id: str
    registered: float
    tracking_uri: str
    optuna_storage: str
    trials_total: int
    trials_done: int
    cells_total: int
    cells_done: int
    running: list[RunningUnit] = field(default_factory=list)
    failed: list[tuple[str, str]] | None = None  # None: the tracking store could not be read
    tracking_error: str = ""

    @property
    def finished(self) -> bool:
        return self.trials_done == self.trials_total and self.cells_done == self.cells_total


def matrix_status(storage_url: str, matrix_id: str | None = None, read_failed: bool = True,
                  search: tuple[str, ...] = ()) -> MatrixStatus:
    """Progress of one registered matrix (the newest when no id is given). Its card files are
    found as a worker finds them (``search``: other places to look; benchmark/run/card_files.py)."""
    queue = open_queue(storage_url)
    registered = queue.matrix(matrix_id)
    plan = Plan.build(MatrixConfig.from_dict(registered["config"]).localised(search))
    labels = {u.id: _trial_label(u, plan.trial_slots_per_study) if isinstance(u, TrialUnit) else u.cell.label()
              for u in plan.units}
    trials, cells = {u.id for u in plan.trial_units}, {u.id for u in plan.cell_units}
    leases = {row["unit"]: row for row in queue.leases(registered["matrix_id"]) if row["unit"] in labels}
    done = {unit for unit, row in leases.items() if row["done"]}
    now = time.time()
    status = MatrixStatus(
        matrix_id=registered["matrix_id"], registered=registered["created"],
        tracking_uri=registered["tracking_uri"], optuna_storage=registered["optuna_storage"],
        trials_total=len(trials), trials_done=len(trials & done), cells_total=len(cells), cells_done=len(cells & done),
        running=[RunningUnit(unit, labels[unit], row["worker"], row["expires"] - now,
                             worker_process_gone(row["worker"]))
                 for unit, row in sorted(leases.items()) if not row["done"] and row["worker"]],
    )
    if read_failed:
        try:
            tracker = MatrixTracker(status.tracking_uri, status.matrix_id, {}, "", create=False)
            status.failed = list(tracker.failed_cells().values())
            # A matrix run by Ray marks nothing in the work queue: the stores say what is done.
            done |= units_done(plan, tracker, open_storage(storage_url))
            status.trials_done, status.cells_done = len(trials & done), len(cells & done)
            status.running = [r for r in status.running if r.unit not in done]
        except Exception as exc:  # noqa: BLE001 - progress is still worth showing without MLflow
            status.tracking_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return status


def _trial_label(unit: TrialUnit, slots: int) -> str:
    cell = unit.tuning_cell
    return (f"tuning {cell.dataset} · {cell.variant} · dropout {dropout_label(cell.dropout)} · "
            f"trial {unit.slot + 1}/{slots}")


def matrix_with_datasets(storage_url: str, names: list[str], matrix_id: str | None = None,
                         search: tuple[str, ...] = ()) -> str:
    """The id of the newest registered matrix whose datasets include all of ``names`` (dataset
    names), or check that ``matrix_id`` does. Raises LookupError naming what is missing."""
    import json

    import sqlalchemy as sa

    from benchmark.engine.workqueue import MATRICES

    queue = open_queue(storage_url)
    query = sa.select(MATRICES.c.matrix_id, MATRICES.c.config).order_by(MATRICES.c.created.desc())
    if matrix_id:
        query = query.where(MATRICES.c.matrix_id == matrix_id)
    with queue.engine.connect() as conn:
        rows = conn.execute(query).all()
    seen = []
    for row in rows:
        try:
            have = list(MatrixConfig.from_dict(json.loads(row.config)).localised(search).cards())
        except (ValueError, LookupError, OSError):  # a matrix whose cards are not here
            continue
        if set(names) <= set(have):
            return row.matrix_id
        seen.append(f"{row.matrix_id} ({', '.join(have)})")
    which = f"matrix {matrix_id} does not include" if matrix_id else "no registered matrix includes"
    known = "; ".join(seen[:5]) + (f" and {len(seen) - 5} more" if len(seen) > 5 else "")
    raise LookupError(f"--datasets: {which} the dataset(s) {', '.join(names)}" + (f"; matrices: {known}" if seen else ""))


def format_status(status: MatrixStatus) -> str:
    registered = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(status.registered))
    lines = [
        f"matrix {status.matrix_id} (registered {registered})",
        f"  tracking {mask_secrets(status.tracking_uri)}",
        f"  tuning trial slots {status.trials_done}/{status.trials_total} done",
        f"  final cells        {status.cells_done}/{status.cells_total} done"
        + ("" if status.failed is None else f", {len(status.failed)} of them failed"),
    ]
    live = [r for r in status.running if r.seconds_left > 0 and not r.dead]
    stalled = [r for r in status.running if r.seconds_left <= 0 or r.dead]
    lines.append(f"  running now: {len(live)}" + (f"; interrupted, to be taken over by the next worker: {len(stalled)}"
                                                   if stalled else ""))
    for unit in live:
        lines.append(f"    {unit.label}  [{unit.worker}, lease {unit.seconds_left:.0f}s left]")
    for unit in stalled:
        why = "worker process gone" if unit.dead else f"lease expired {-unit.seconds_left:.0f}s ago"
        lines.append(f"    {unit.label}  [{unit.worker}, {why}]")
    for label, error in status.failed or []:
        lines.append(f"  failed: {label}: {error}")
    if status.tracking_error:
        lines.append(f"  (failed cells unknown: tracking store not readable: {status.tracking_error})")
    lines.append("  state: " + ("finished" if status.finished else "in progress or interrupted; "
                                "`fusebench worker` (or the same `fusebench bench`) resumes it"))
    return "\n".join(lines)
