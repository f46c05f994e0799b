"""`fusebench status`: how far a registered matrix has got, read from the stores alone, so it works
from any machine that reaches them: the matrix's record (stores/matrix_registry.py), finished trials
in Optuna and finished, failed and running cells in MLflow (benchmark/run/store_progress.py), and
the bench that drives it (stores/driver_lock.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from benchmark.run.config import MatrixConfig
from benchmark.run.plan import Plan
from benchmark.run.store_progress import units_done
from benchmark.stores.database import mask_secrets, open_storage
from benchmark.stores.driver_lock import DriverRecord, driver_of
from benchmark.stores.matrix_registry import MatrixRegistry
from benchmark.tracking.mlflow_runs import MatrixTracker
from benchmark.vocabulary import TAG_CELL


@dataclass
class RunningCell:
    label: str
    worker: str  # the process that runs it (its run's `worker` tag)


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
    driver: DriverRecord | None = None  # the bench that drives the matrix now; None: none does
    running: list[RunningCell] = field(default_factory=list)  # cell runs still open in MLflow
    failed: list[tuple[str, str]] | None = None  # None: the tracking store could not be read (or was not asked)
    tracking_error: str = ""

    @property
    def finished(self) -> bool:
        return self.trials_done == self.trials_total and self.cells_done == self.cells_total

    @property
    def driver_alive(self) -> bool:
        return self.driver is not None and self.driver.alive


def matrix_status(storage_url: str, matrix_id: str | None = None, read_failed: bool = True,
                  search: tuple[str, ...] = ()) -> MatrixStatus:
    """Progress of one registered matrix (the newest when no id is given); ``read_failed``: also list
    its failed cells. Its card files are found by their registered path or, where that is missing
    here, by content among ``search`` (benchmark/run/card_files.py)."""
    registered = MatrixRegistry(storage_url).matrix(matrix_id)
    plan = Plan.build(MatrixConfig.from_dict(registered["config"]).localised(search))
    trials, cells = {u.id for u in plan.trial_units}, {u.id for u in plan.cell_units}
    status = MatrixStatus(
        matrix_id=registered["matrix_id"], registered=registered["created"],
        tracking_uri=registered["tracking_uri"], optuna_storage=registered["optuna_storage"],
        trials_total=len(trials), trials_done=0, cells_total=len(cells), cells_done=0,
        driver=driver_of(storage_url, registered["matrix_id"]))
    try:
        tracker = MatrixTracker(status.tracking_uri, status.matrix_id, {}, "", create=False)
        done = units_done(plan, tracker, open_storage(storage_url))
        status.trials_done, status.cells_done = len(trials & done), len(cells & done)
        labels = {u.cell_hash: u.cell.label() for u in plan.cell_units}
        status.running = [RunningCell(labels.get(run.data.tags.get(TAG_CELL), run.info.run_name or "?"),
                                      run.data.tags.get("worker", ""))
                          for run in tracker.cell_runs() if run.info.status == "RUNNING"]
        if read_failed:
            status.failed = list(tracker.failed_cells().values())
    except Exception as exc:  # noqa: BLE001 - the registered matrix is still worth showing without MLflow
        status.tracking_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return status


def matrix_with_datasets(storage_url: str, names: list[str], matrix_id: str | None = None,
                         search: tuple[str, ...] = ()) -> str:
    """The id of the newest registered matrix whose datasets include all of ``names`` (dataset
    names), or check that ``matrix_id`` does. Raises LookupError naming what is missing."""
    seen = []
    for row in MatrixRegistry(storage_url).matrices(matrix_id):
        try:
            have = list(MatrixConfig.from_dict(row["config"]).localised(search).cards())
        except (ValueError, LookupError, OSError):  # a matrix whose cards are not here
            continue
        if set(names) <= set(have):
            return row["matrix_id"]
        seen.append(f"{row['matrix_id']} ({', '.join(have)})")
    which = f"matrix {matrix_id} does not include" if matrix_id else "no registered matrix includes"
    known = "; ".join(seen[:5]) + (f" and {len(seen) - 5} more" if len(seen) > 5 else "")
    raise LookupError(f"--datasets: {which} the dataset(s) {', '.join(names)}" + (f"; matrices: {known}" if seen else ""))


def format_status(status: MatrixStatus) -> str:
    registered = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(status.registered))
    lines = [
        f"matrix {status.matrix_id} (registered {registered})",
        f"  tracking {mask_secrets(status.tracking_uri)}",
    ]
    if status.driver is None:
        lines.append("  driver: none (no bench runs it now)")
    elif status.driver_alive:
        lines.append(f"  driver: {status.driver.driver} (heartbeat {status.driver.age_s():.0f}s ago)")
    else:
        lines.append(f"  driver: {status.driver.driver} is gone (no heartbeat for {status.driver.age_s():.0f}s); "
                     "the next `fusebench bench` of this matrix takes over")
    if status.tracking_error:
        lines.append(f"  (progress unknown: tracking store not readable: {status.tracking_error})")
    else:
        lines += [
            f"  tuning trial slots {status.trials_done}/{status.trials_total} done",
            f"  final cells        {status.cells_done}/{status.cells_total} done"
            + ("" if status.failed is None else f", {len(status.failed)} of them failed"),
        ]
        if status.running:
            what = "running now" if status.driver_alive else "interrupted (left open; run again on resume)"
            lines.append(f"  cells {what}: {len(status.running)}")
            lines += [f"    {cell.label}  [{cell.worker}]" for cell in status.running]
    for label, error in status.failed or []:
        lines.append(f"  failed: {label}: {error}")
    if not status.tracking_error:
        lines.append("  state: " + ("finished" if status.finished else "in progress" if status.driver_alive else
                                    "interrupted; the same `fusebench bench` resumes it"))
    return "\n".join(lines)
