"""A worker: claims units of a registered matrix (tuning-trial slots and final cells)
through the work queue and runs them until every unit is done.

For each (dataset, strategy, dropout) one Optuna study gets the same trial budget; its best
hyperparameters are retrained with every seed and evaluated on the test split, next to the
strategy's defaults on the same seeds (the tuning gain; benchmark/train/cell.py). Finished
cells are found by configuration hash and skipped, so an interrupted run resumes."""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from benchmark.features.tensors import FeatureSet, build_features
from benchmark.progress import MatrixDisplay
from benchmark.run.folds import FoldSplits
from benchmark.run.plan import Plan
from benchmark.run.units import CellUnit, TrialUnit, Unit
from benchmark.stores.database import open_storage
from benchmark.stores.retry import is_store_outage, retry
from benchmark.vocabulary import STOP_REASON, cell_tags, dropout_label
from benchmark.tracking.mlflow_runs import MatrixTracker
from benchmark.train.cell import CellBudget, run_cells
from benchmark.train.cost import peak_rss_mb
from benchmark.train.results import Cell, RunResult
from benchmark.train.study_tags import study_tags
from benchmark.train.tuning import default_trial_params, load_study, run_trial_slot
from strategies import discover


FAULT_CELL_DELAY_S = float(os.environ.get("FUSEBENCH_FAULT_CELL_DELAY_S", "0"))
# Set to "1" by `fusebench bench` for the workers it spawns: the bench shows the matrix's progress
# itself, so the workers print no counters of their own (two interleaved counters jump backwards).
QUIET_PROGRESS_ENV = "FUSEBENCH_QUIET_PROGRESS"


@dataclass
class MatrixOutcome:
    matrix_id: str
    parent_run_id: str
    completed: list[RunResult] = field(default_factory=list)
    skipped: int = 0
    reused: int = 0  # cells whose result another matrix of the store had recorded (copied, not retrained)
    failed: list[tuple[str, str]] = field(default_factory=list)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float | None = None  # this process's peak resident memory, MiB (cost.peak_rss_mb)


def matrix_display(plan: Plan, quiet: bool = False) -> MatrixDisplay:
    """The matrix-wide progress display over a plan's units."""
    return MatrixDisplay({u.id: u.cell.label() for u in plan.cell_units}, len(plan.units), quiet=quiet)


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
        self.storage = open_storage(storage_url)
        self.tracker = retry(lambda: MatrixTracker(tracking_uri, self.matrix_id, asdict(plan.config), plan.config.device,
                                                   create=False), f"open tracking store {tracking_uri}")
        self.features: dict[str, FeatureSet] = dict(features or {})
        self.fold_splits = FoldSplits(plan.config, plan.cards)  # k-fold: each fold's splits (benchmark/run/folds.py)
        self.budget = CellBudget.of(plan.config)
        self.phases = {"data_and_encoding": 0.0, "tuning": 0.0, "final_runs": 0.0}
        self.outcome = MatrixOutcome(self.matrix_id, self.tracker.parent_id)

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
        self.outcome.phase_seconds = self.phases
        self.outcome.peak_rss_mb = peak_rss_mb()
        return self.outcome

    @staticmethod
    def _ready(unit: Unit, done: set[str]) -> bool:
        return all(slot in done for slot in unit.waits_for)  # earlier trial slots of the study

    def _features(self, dataset: str) -> FeatureSet:
        if dataset not in self.features:
            started = time.perf_counter()
            self.features[dataset] = build_features(self.plan.cards[dataset], log=self.log,
                                                    max_tokens=self.config.max_tokens)
            self.phases["data_and_encoding"] += time.perf_counter() - started
        return self.features[dataset]

    def _ranking_metric(self, dataset: str) -> str:
        return self.plan.cards[dataset].ranking_metric

    def _trial(self, trial: TrialUnit, display) -> None:
        unit, study_key, cell, slot = trial.id, trial.study_key, trial.tuning_cell, trial.slot
        features = self._features(cell.dataset)
        display.cell(f"tuning {cell.dataset} · {cell.variant} · dropout {dropout_label(cell.dropout)}")
        display.detail(f"trial {slot + 1}/{self.plan.trial_slots_per_study}")
        started = time.perf_counter()
        splits = self.fold_splits.of(cell, features, self.config.device)
        fixed = default_trial_params(cell.strategy) if slot == 0 else None
        study = load_study(study_key, self.storage, self.plan.trial_slots_per_study, slot, fixed,
                           metric=self._ranking_metric(cell.dataset))
        try:
            run_trial_slot(study, slot, cell.strategy, cell.fixed_hparams, features, splits["train"],
                           splits["validation"], self.budget.train_config(cell, self._ranking_metric(cell.dataset)))
        except Exception as exc:  # noqa: BLE001 - see below
            # A worker that took the lapsed lease over failed this worker's running trial as
            # stale; Optuna then refuses to finish it. The slot belongs to the other worker now.
            if is_store_outage(exc) or self._still_holds(unit, f"trial {slot + 1} of {study_key}"):
                raise
        self.phases["tuning"] += time.perf_counter() - started

    def _claim_siblings(self, claimed: CellUnit, pending: list[Unit], done: set[str]) -> list[CellUnit]:
        """The other pending cells of the claimed cell's study (its seeds) this worker can claim
        now, to train them stacked with it (none when the profile turns stacking off)."""
        if not self.config.stack_seeds:
            return []
        # under shared tuning a study holds the cells of every rate: one rate a stack
        return [u for u in pending if isinstance(u, CellUnit) and u.id != claimed.id and u.study_key == claimed.study_key
                and u.cell.dropout == claimed.cell.dropout and self._ready(u, done)
                and self.queue.claim(self.matrix_id, u.id, self.worker_id)]

    def _cells(self, members: list[CellUnit], display) -> None:
        """Run cells of one study, trained together, and record each as its own run.
        Each unit is marked done as its cell reaches an end (recorded, found finished, or failed)
        while this worker holds it; one a store outage interrupts stays open for the retry, and one
        Ctrl-C interrupts stays open too, its run closed as KILLED."""
        first = members[0].cell
        display.cell(first.label() if len(members) == 1 else
                     f"{first.dataset} · {first.variant} · dropout {dropout_label(first.dropout)} · "
                     f"seeds {', '.join(str(m.cell.seed) for m in members)}")
        todo = []  # (unit, cell, run id)
        for member in members:
            unit, cell, key = member.id, member.cell, member.cell_hash
            if self.tracker.is_finished(key):  # finished by a worker killed before it marked the unit done
                self.outcome.skipped += 1
                self.queue.mark_done(self.matrix_id, unit)
                continue
            self.tracker.discard_unfinished(key)
            source = self.tracker.finished_elsewhere(key)  # the same cell, finished for another matrix
            family = discover().get(cell.strategy).family
            run_id = self.tracker.start_cell(key, cell.label(), {
                **cell_tags(cell.dataset, cell.strategy, cell.variant, family, cell.dropout, cell.seed, cell.fold),
                "worker": self.worker_id})
            if source is not None:
                self.tracker.adopt_cell(run_id, source)
                self.outcome.reused += 1
                self.queue.mark_done(self.matrix_id, unit)
                continue
            todo.append((unit, cell, run_id))
        if not todo:
            return
        recorded: set[str] = set()  # units whose result is written: never failed or killed afterwards
        try:
            self._train_and_record(todo, members[0].study_key, display, recorded)
        except KeyboardInterrupt:
            self._close_interrupted([run_id for unit, _, run_id in todo if unit not in recorded])
            raise

    def _train_and_record(self, todo: list[tuple[str, Cell, str]], study_key: str, display, recorded: set[str]) -> None:
        """Train the cells of ``todo`` (unit, cell, run id) together and record each, adding its
        unit to ``recorded``; a failure fails the cells not recorded yet, and the matrix goes on."""
        features = self._features(todo[0][1].dataset)
        started = time.perf_counter()
        try:
            time.sleep(FAULT_CELL_DELAY_S)  # fault injection for tests: widen the mid-cell window
            splits = self.fold_splits.of(todo[0][1], features, self.config.device)
            study = load_study(study_key, self.storage, self.plan.trial_slots_per_study,
                               metric=self._ranking_metric(todo[0][1].dataset))
            results = run_cells([cell for _, cell, _ in todo], features, splits, study, self.budget,
                                self._ranking_metric(todo[0][1].dataset), display.detail, self.log,
                                stack=self.config.stack_seeds)
            for (unit, cell, run_id), result in zip(todo, results):
                if not self._still_holds(unit, cell.label()):
                    continue
                self.tracker.finish_cell(run_id, result.params(), result.metrics(),
                                         {"family": result.family, STOP_REASON: result.stop_reason,
                                          **study_tags(study, cell.strategy, self._ranking_metric(cell.dataset))},
                                         result.to_dict(), steps=result.step_metrics(), artifacts=result.artifacts())
                recorded.add(unit)
                self.queue.mark_done(self.matrix_id, unit)  # each cell as it is recorded, not the group at its end
                self.outcome.completed.append(result)
        except Exception as exc:  # noqa: BLE001 - a failed cell is recorded and the matrix goes on
            if is_store_outage(exc):
                raise  # the store, not the cell, failed: handled by the retry around the unit
            message = f"{type(exc).__name__}: {exc}"
            for unit, cell, run_id in todo:
                if unit in recorded or not self._still_holds(unit, cell.label()):
                    continue
                self.tracker.fail_cell(run_id, message + "\n" + traceback.format_exc(limit=5), type(exc).__name__)
                self.outcome.failed.append((cell.label(), message))
                self.queue.mark_done(self.matrix_id, unit)
                self.log(f"FAILED {cell.label()}: {message}")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        self.phases["final_runs"] += time.perf_counter() - started

    def _close_interrupted(self, run_ids: list[str]) -> None:
        """Close the runs of cells that an interrupt (Ctrl-C) stopped as KILLED, so none stays RUNNING;
        their units stay open, to run again on resume."""
        for run_id in run_ids:
            try:
                self.tracker.kill_cell(run_id)
            except Exception:  # noqa: BLE001 - the interrupt matters more than a store that is also gone
                break

    def _still_holds(self, unit: str, label: str) -> bool:
        """Whether this worker still holds the unit's lease. A lease that lapsed (a stalled
        worker, a store outage) may have been taken over by another worker, which deleted this
        worker's unfinished run and redoes the cell: then this result is dropped, not written."""
        if self.queue.holds(self.matrix_id, unit, self.worker_id):
            return True
        self.log(f"lease on {label} was taken over by another worker; leaving it to that worker")
        return False
