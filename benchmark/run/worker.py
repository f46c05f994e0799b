"""A worker: claims units of a registered matrix (tuning-trial slots and final cells)
through the work queue and runs them until every unit is done.

For each (dataset, strategy, dropout) one Optuna study gets the same trial budget; its best
hyperparameters are retrained with every seed and evaluated on the test split, next to the
strategy's defaults on the same seeds (the tuning gain; benchmark/train/cell.py). Finished
cells are found by configuration hash and skipped, so an interrupted run resumes. Running a unit
is benchmark/run/unit_runner.py's job; this module adds the claiming and the leases."""

from __future__ import annotations

import contextlib
import os
import time
from typing import Callable

from benchmark.features.tensors import FeatureSet
from benchmark.progress import MatrixDisplay
from benchmark.run.plan import Plan
from benchmark.run.unit_runner import MatrixOutcome, UnitRunner
from benchmark.run.units import CellUnit, TrialUnit, Unit
from benchmark.stores.retry import retry

# Set to "1" by `fusebench bench` for the workers it spawns: the bench shows the matrix's progress
# itself, so the workers print no counters of their own (two interleaved counters jump backwards).
QUIET_PROGRESS_ENV = "FUSEBENCH_QUIET_PROGRESS"

__all__ = ["MatrixOutcome", "QUIET_PROGRESS_ENV", "Worker", "matrix_display"]


def matrix_display(plan: Plan, quiet: bool = False) -> MatrixDisplay:
    """The matrix-wide progress display over a plan's units."""
    return MatrixDisplay({u.id: u.cell.label() for u in plan.cell_units}, len(plan.units), quiet=quiet)


class LeaseOwnership:
    """A worker's hold on its units: the lease in the work queue, which can lapse and be taken over
    (unit_runner.Ownership)."""

    def __init__(self, queue, matrix_id: str, worker_id: str, log: Callable[[str], None]) -> None:
        self.queue, self.matrix_id, self.worker_id, self.log = queue, matrix_id, worker_id, log

    def holds(self, unit: str, label: str) -> bool:
        """Whether this worker still holds the unit's lease. A lease that lapsed (a stalled
        worker, a store outage) may have been taken over by another worker, which deleted this
        worker's unfinished run and redoes the cell: then this result is dropped, not written."""
        if self.queue.holds(self.matrix_id, unit, self.worker_id):
            return True
        self.log(f"lease on {label} was taken over by another worker; leaving it to that worker")
        return False

    def ended(self, unit: str) -> None:
        self.queue.mark_done(self.matrix_id, unit)


class Worker:
    """Claims units of one matrix (tuning-trial slots and final cells) through the work
    queue and runs them until every unit is done. Any number of workers, on any number of
    machines, can run the same matrix; a single `fusebench bench` is one such worker. It reads the
    matrix's cells, studies and units from its Plan (benchmark/run/plan.py)."""

    def __init__(self, plan: Plan, tracking_uri: str, storage_url: str, queue, worker_id: str,
                 log: Callable[[str], None] = print, poll_s: float = 2.0,
                 features: dict[str, FeatureSet] | None = None) -> None:
        self.plan, self.queue, self.worker_id, self.log, self.poll_s = plan, queue, worker_id, log, poll_s
        self.config, self.matrix_id = plan.config, plan.matrix_id
        self.runner = UnitRunner(plan, tracking_uri, storage_url, worker_id,
                                 LeaseOwnership(queue, plan.matrix_id, worker_id, log), log, features)

    @property
    def tracker(self):
        return self.runner.tracker

    @property
    def storage(self):
        return self.runner.storage

    @property
    def outcome(self) -> MatrixOutcome:
        return self.runner.outcome

    def run(self) -> MatrixOutcome:
        plan = self.plan
        done = self.queue.done_units(self.matrix_id)
        already = sum(u.id in done for u in plan.cell_units)
        self.log(f"matrix {self.matrix_id}: {len(plan.cells)} cells in {len(plan.studies)} studies x "
                 f"{plan.trial_slots_per_study} trial slots; {already} cells already finished")
        self.outcome.skipped = already
        with matrix_display(plan, quiet=os.environ.get(QUIET_PROGRESS_ENV) == "1") as display:
            while True:
                done = self.queue.done_units(self.matrix_id)
                display.sync(done)  # matrix-wide: every worker's finished cells
                pending = [u for u in plan.units if u.id not in done]
                if not pending:
                    break
                claimed = next((u for u in pending if self._ready(u, done) and
                                self.queue.claim(self.matrix_id, u.id, self.worker_id)), None)
                if claimed is None:
                    self.queue.release_dead_local(self.matrix_id)
                    display.detail("waiting for other workers")
                    time.sleep(self.poll_s)
                    continue
                if isinstance(claimed, TrialUnit):
                    with self.queue.holding(self.matrix_id, claimed.id, self.worker_id):
                        # A store that drops out mid-unit: back off and redo the unit (its own checks
                        # skip what was recorded), or give up with StoreUnavailable after the budget.
                        retry(lambda: self._trial(claimed, display), f"trial unit {claimed.id}")
                    if self.queue.holds(self.matrix_id, claimed.id, self.worker_id):
                        self.queue.mark_done(self.matrix_id, claimed.id)
                    continue
                members = [claimed] + self._claim_siblings(claimed, pending, done)
                with contextlib.ExitStack() as leases:
                    for member in members:
                        leases.enter_context(self.queue.holding(self.matrix_id, member.id, self.worker_id))
                    retry(lambda: self._cells(members, display), f"cell unit {claimed.id}")
        return self.runner.finish()

    @staticmethod
    def _ready(unit: Unit, done: set[str]) -> bool:
        return all(slot in done for slot in unit.waits_for)  # earlier trial slots of the study

    def _trial(self, trial: TrialUnit, display) -> None:
        self.runner.trial(trial, display)

    def _cells(self, members: list[CellUnit], display) -> None:
        self.runner.cells(members, display)

    def _claim_siblings(self, claimed: CellUnit, pending: list[Unit], done: set[str]) -> list[CellUnit]:
        """The other pending cells of the claimed cell's study (its seeds) this worker can claim
        now, to train them stacked with it (none when the profile turns stacking off)."""
        if not self.config.stack_seeds:
            return []
        # under shared tuning a study holds the cells of every rate: one rate a stack
        return [u for u in pending if isinstance(u, CellUnit) and u.id != claimed.id and u.study_key == claimed.study_key
                and u.cell.dropout == claimed.cell.dropout and self._ready(u, done)
                and self.queue.claim(self.matrix_id, u.id, self.worker_id)]
