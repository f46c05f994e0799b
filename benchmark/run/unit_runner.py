"""Running one unit of a Plan: a tuning-trial slot, or a group of a study's final cells trained
together. The one code path per unit kind, shared by the in-process runner (benchmark/run/in_process.py)
and the Ray executor's tasks (benchmark/run/ray_bench.py): the checks that make a unit idempotent
(a unit found done in the stores returns at once, a killed attempt's RUNNING trial is failed and its
open MLflow run discarded), training, and recording to MLflow. Each unit has one runner at a time:
the matrix has one driver (stores/driver_lock.py), and Ray starts a unit again only when the node
that ran it is gone."""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from benchmark.features.tensors import FeatureSet, build_features
from benchmark.run.finetune_axis import feature_key
from benchmark.run.folds import FoldSplits
from benchmark.run.plan import Plan
from benchmark.run.units import CellUnit, TrialUnit
from benchmark.stores.database import mask_secrets, open_storage
from benchmark.stores.retry import is_store_outage, retry
from benchmark.tracking.mlflow_runs import MatrixTracker
from benchmark.train.cell import CellBudget, run_cells
from benchmark.train.cost import peak_rss_mb
from benchmark.train.results import Cell, RunResult
from benchmark.train.study_tags import study_tags
from benchmark.train.seeds import sampler_seed
from benchmark.train.tuning import default_trial_params, is_final, load_study, run_trial_slot, slot_trials, stale_trials
from benchmark.vocabulary import FINETUNE_FROZEN, STOP_REASON, cell_tags, dropout_label, finetune_of
from strategies import discover

FAULT_CELL_DELAY_S = float(os.environ.get("FUSEBENCH_FAULT_CELL_DELAY_S", "0"))
# The tracking URI a process running units for `fusebench bench` writes to (a Ray worker of its local
# instance, or of a cluster's node), passed in its environment as its storage URL is passed
# in FUSEBENCH_OPTUNA_STORAGE: a password in either stays off command lines and task arguments.
WORKER_TRACKING_ENV = "FUSEBENCH_WORKER_TRACKING_URI"


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


class NoDisplay:
    """The display of a runner whose progress is shown elsewhere (a Ray task: the driver counts)."""

    def cell(self, label: str) -> None:
        pass

    def detail(self, text: str) -> None:
        pass


class UnitRunner:
    """Runs units of one matrix in this process, against its stores: keeps the features, fold splits
    and store connections of the units it ran, so the next unit of the same dataset starts at once.
    ``worker_id`` goes into each cell run's ``worker`` tag."""

    def __init__(self, plan: Plan, tracking_uri: str, storage_url: str, worker_id: str,
                 log: Callable[[str], None] = print,
                 features: dict[str, FeatureSet] | None = None) -> None:
        self.plan, self.worker_id, self.log = plan, worker_id, log
        self.config, self.matrix_id = plan.config, plan.matrix_id
        self.storage = open_storage(storage_url)
        self.tracker = retry(lambda: MatrixTracker(tracking_uri, self.matrix_id, asdict(plan.config), plan.config.device,
                                                   create=False), f"open tracking store {mask_secrets(tracking_uri)}")
        self.features: dict[str, FeatureSet] = dict(features or {})
        self.fold_splits = FoldSplits(plan.config, plan.cards)  # k-fold: each fold's splits (benchmark/run/folds.py)
        self.budget = CellBudget.of(plan.config)
        self.phases = {"data_and_encoding": 0.0, "tuning": 0.0, "final_runs": 0.0}
        self.outcome = MatrixOutcome(self.matrix_id, self.tracker.parent_id)

    def finish(self) -> MatrixOutcome:
        """The outcome of the units run so far, with phase times and this process's peak memory."""
        self.outcome.phase_seconds = dict(self.phases)
        self.outcome.peak_rss_mb = peak_rss_mb()
        return self.outcome

    def _features(self, cell: Cell) -> FeatureSet:
        """The features ``cell`` trains on: its dataset's, built for its fine-tuning mode (kept under
        finetune_axis.feature_key: the dataset's name when frozen)."""
        mode = finetune_of(cell.fixed_hparams)
        key = feature_key(cell.dataset, mode)
        if key not in self.features:
            started = time.perf_counter()
            self.features[key] = build_features(self.plan.cards[cell.dataset], log=self.log,
                                                max_tokens=self.config.max_tokens, finetune=mode)
            self.phases["data_and_encoding"] += time.perf_counter() - started
        return self.features[key]

    def _ranking_metric(self, dataset: str) -> str:
        return self.plan.cards[dataset].ranking_metric

    # ------------------------------------------------------------ trial slots
    def trial(self, trial: TrialUnit, display=NoDisplay()) -> None:
        """Run trial slot ``trial.slot`` of its study, unless a final trial already holds the slot
        (checked before any data is loaded: a resumed matrix skips done slots at once)."""
        study_key, cell, slot = trial.study_key, trial.tuning_cell, trial.slot
        finetuned = finetune_of(cell.fixed_hparams) != FINETUNE_FROZEN
        fixed = default_trial_params(cell.strategy, finetuned) if slot == 0 else None
        study = load_study(study_key, self.storage, self.plan.trial_slots_per_study, slot, fixed,
                           metric=self._ranking_metric(cell.dataset),
                           seed=sampler_seed(cell.tuning_key(), slot, self.config.tuning_draw))
        stale = stale_trials(study)
        if any(is_final(t, stale) for t in slot_trials(study, slot)):
            return
        features = self._features(cell)
        display.cell(f"tuning {cell.dataset} · {cell.variant} · dropout {dropout_label(cell.dropout)}")
        display.detail(f"trial {slot + 1}/{self.plan.trial_slots_per_study}")
        started = time.perf_counter()
        splits = self.fold_splits.of(cell, features, self.config.device)
        run_trial_slot(study, slot, cell.strategy, cell.fixed_hparams, features, splits["train"],
                       splits["validation"], self.budget.train_config(cell, self._ranking_metric(cell.dataset)),
                       draw=self.config.tuning_draw)
        self.phases["tuning"] += time.perf_counter() - started

    # ------------------------------------------------------------ cells
    def cells(self, members: list[CellUnit], display=NoDisplay()) -> None:
        """Run cells of one study, trained together, and record each as its own run.
        A cell already finished is skipped; one a store outage interrupts stays open for the retry,
        and one Ctrl-C interrupts stays open too, its run closed as KILLED."""
        first = members[0].cell
        display.cell(first.label() if len(members) == 1 else
                     f"{first.dataset} · {first.variant} · dropout {dropout_label(first.dropout)} · "
                     f"seeds {', '.join(str(m.cell.seed) for m in members)}")
        todo = []  # (unit, cell, run id)
        for member in members:
            unit, cell, key = member.id, member.cell, member.cell_hash
            if self.tracker.is_finished(key):  # finished by an earlier attempt (a task Ray ran again)
                self.outcome.skipped += 1
                continue
            self.tracker.discard_unfinished(key)  # an earlier attempt that was killed or failed
            source = self.tracker.finished_elsewhere(key)  # the same cell, finished for another matrix
            family = discover().get(cell.strategy).family
            run_id = self.tracker.start_cell(key, cell.label(), {
                **cell_tags(cell.dataset, cell.strategy, cell.variant, family, cell.dropout, cell.seed, cell.fold),
                "worker": self.worker_id})
            if source is not None:
                self.tracker.adopt_cell(run_id, source)
                self.outcome.reused += 1
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
        features = self._features(todo[0][1])
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
                self.tracker.finish_cell(run_id, result.params(), result.metrics(),
                                         {"family": result.family, STOP_REASON: result.stop_reason,
                                          **study_tags(study, cell.strategy, self._ranking_metric(cell.dataset),
                                                       finetune_of(cell.fixed_hparams) != FINETUNE_FROZEN)},
                                         result.to_dict(), steps=result.step_metrics(), artifacts=result.artifacts())
                recorded.add(unit)
                self.outcome.completed.append(result)
        except Exception as exc:  # noqa: BLE001 - a failed cell is recorded and the matrix goes on
            if is_store_outage(exc):
                raise  # the store, not the cell, failed: handled by the retry around the unit
            message = f"{type(exc).__name__}: {exc}"
            for unit, cell, run_id in todo:
                if unit in recorded:
                    continue
                self.tracker.fail_cell(run_id, message + "\n" + traceback.format_exc(limit=5), type(exc).__name__)
                self.outcome.failed.append((cell.label(), message))
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
