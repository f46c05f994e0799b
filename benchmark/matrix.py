"""Run a benchmark matrix: strategies x datasets x training dropout rates x seeds.

For each (dataset, strategy, dropout) one Optuna study gets the same trial budget; its
best hyperparameters are retrained with every seed and evaluated on the test split, next
to the strategy's defaults on the same seeds (the tuning gain). Finished cells are found
by configuration hash and skipped, so an interrupted run resumes: the work is split into
leased units (benchmark/workqueue.py) that any number of workers claim."""

from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from benchmark.cards import load_all_cards
from benchmark.config import MatrixConfig, expand
from benchmark.cost import PeakMemory, parameter_count, training_step_tensor_mb
from benchmark.evaluation import evaluate, full_accuracy
from benchmark.features import FeatureSet, build_features
from benchmark.progress import MatrixDisplay
from benchmark.results import Cell, RunResult
from benchmark.tracking import MatrixTracker
from benchmark.training import TrainConfig, build_model, train
from benchmark.workqueue import is_store_outage, retry
from benchmark.tuning import budget_trials, default_params, split_params
from strategies import discover, load_plugin


FAULT_CELL_DELAY_S = float(os.environ.get("FUSEBENCH_FAULT_CELL_DELAY_S", "0"))


@dataclass
class MatrixOutcome:
    matrix_id: str
    parent_run_id: str
    completed: list[RunResult] = field(default_factory=list)
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    phase_seconds: dict[str, float] = field(default_factory=dict)


def plan_cells(config: MatrixConfig) -> list[Cell]:
    """Every cell of the matrix, in run order. Unimodal baselines expand to one per modality."""
    for plugin in config.plugins:
        load_plugin(plugin)
    registry = discover()
    cards = load_all_cards()
    cells = []
    for dataset in expand(config.datasets, sorted(cards), "dataset"):
        modalities = cards[dataset].modality_names
        for strategy in expand(config.strategies, registry.names(), "strategy"):
            cls = registry.get(strategy)
            if cls.family == "unimodal":
                variants = [(f"{strategy}[{m}]", {"modality": m}) for m in modalities]
            elif len(modalities) < cls.min_modalities or (cls.max_modalities and len(modalities) > cls.max_modalities):
                continue  # the strategy states it cannot take this many modalities
            else:
                variants = [(strategy, {})]
            for variant, fixed in variants:
                for dropout in config.dropout_rates:
                    for seed in config.seeds:
                        cells.append(Cell(dataset, strategy, variant, float(dropout), int(seed), fixed))
    return cells


def budget_tag(config: MatrixConfig) -> str:
    return f"t{config.trials}-e{config.epochs}-b{config.batch_size}"


def cell_hash(cell: Cell, config: MatrixConfig) -> str:
    payload = {**asdict(cell), "budget": budget_tag(config)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def study_units(config: MatrixConfig, cells: list[Cell]) -> dict[str, list[Cell]]:
    """Study key -> its cells, in plan order (one study per dataset, variant, dropout rate)."""
    studies: dict[str, list[Cell]] = {}
    for cell in cells:
        studies.setdefault(cell.study_name(budget_tag(config)), []).append(cell)
    return studies


def trial_unit(study_key: str, slot: int) -> str:
    return f"trial:{study_key}#{slot}"


def cell_unit(cell: Cell, config: MatrixConfig) -> str:
    return cell_unit_of(cell_hash(cell, config))


def cell_unit_of(hash_: str) -> str:
    """The work-queue unit of the cell with this configuration hash (the MLflow tag)."""
    return f"cell:{hash_}"


def matrix_units(config: MatrixConfig, studies: dict[str, list[Cell]]):
    """(unit id, kind, payload) in run order: each study's trial slots, then its cells.
    kind "trial": payload (study key, the study's first cell, slot); kind "cell": payload
    (study key, cell, the study's trial-slot units it waits for)."""
    for study_key, cells in studies.items():
        slots = [trial_unit(study_key, k) for k in range(config.trials)]
        for k, unit in enumerate(slots):
            yield unit, "trial", (study_key, cells[0], k)
        for cell in cells:
            yield cell_unit(cell, config), "cell", (study_key, cell, slots)


class Worker:
    """Claims units of one matrix (tuning-trial slots and final cells) through the work
    queue and runs them until every unit is done. Any number of workers, on any number of
    machines, can run the same matrix; a single `fusebench bench` is one such worker."""

    def __init__(self, config: MatrixConfig, tracking_uri: str, storage_url: str, queue, worker_id: str,
                 log: Callable[[str], None] = print, poll_s: float = 2.0,
                 features: dict[str, FeatureSet] | None = None) -> None:
        from benchmark.tuning import open_storage

        self.config, self.queue, self.worker_id, self.log, self.poll_s = config, queue, worker_id, log, poll_s
        self.matrix_id = config.matrix_id()
        self.cells = plan_cells(config)
        self.studies = study_units(config, self.cells)
        self.storage = open_storage(storage_url)
        self.tracker = retry(lambda: MatrixTracker(tracking_uri, self.matrix_id, asdict(config), config.device,
                                                   create=False), f"open tracking store {tracking_uri}")
        self.features: dict[str, FeatureSet] = dict(features or {})
        self.unit_list = list(matrix_units(config, self.studies))  # fixed for the matrix; hashed once, not per poll
        self.phases = {"data_and_encoding": 0.0, "tuning": 0.0, "final_runs": 0.0}
        self.outcome = MatrixOutcome(self.matrix_id, self.tracker.parent_id)

    def run(self) -> MatrixOutcome:
        total = len(self.cells)
        done = self.queue.done_units(self.matrix_id)
        already = sum(cell_unit(c, self.config) in done for c in self.cells)
        self.log(f"matrix {self.matrix_id}: {total} cells in {len(self.studies)} studies x {self.config.trials} trials; "
                 f"{already} cells already finished")
        self.outcome.skipped = already
        with MatrixDisplay(total=total, done=already) as display:
            while True:
                done = self.queue.done_units(self.matrix_id)
                pending = [u for u in self.unit_list if u[0] not in done]
                if not pending:
                    break
                claimed = next((u for u in pending if self._ready(u, done) and
                                self.queue.claim(self.matrix_id, u[0], self.worker_id)), None)
                if claimed is None:
                    self.queue.release_dead_local(self.matrix_id)
                    display.detail("waiting for other workers")
                    time.sleep(self.poll_s)
                    continue
                unit, kind, payload = claimed
                with self.queue.holding(self.matrix_id, unit, self.worker_id):
                    # A store that drops out mid-unit: back off and redo the unit (its own checks
                    # skip what was recorded), or give up with StoreUnavailable after the budget.
                    if kind == "trial":
                        retry(lambda: self._trial(*payload, display), f"trial unit {unit}")
                    else:
                        retry(lambda: self._cell(payload[0], payload[1], display), f"cell unit {unit}")
                        display.advance()
                self.queue.mark_done(self.matrix_id, unit)
        self.outcome.phase_seconds = self.phases
        return self.outcome

    @staticmethod
    def _ready(unit, done: set[str]) -> bool:
        _, kind, payload = unit
        return kind == "trial" or all(slot in done for slot in payload[2])

    def _features(self, dataset: str) -> FeatureSet:
        if dataset not in self.features:
            from benchmark.cards import find_card

            started = time.perf_counter()
            self.features[dataset] = build_features(find_card(dataset), log=self.log)
            self.phases["data_and_encoding"] += time.perf_counter() - started
        return self.features[dataset]

    def _base_config(self, cell: Cell, seed: int) -> TrainConfig:
        return TrainConfig(epochs=self.config.epochs, batch_size=self.config.batch_size,
                           modality_dropout=cell.dropout, seed=seed, device=self.config.device)

    def _trial(self, study_key: str, cell: Cell, slot: int, display) -> None:
        from benchmark.tuning import default_trial_params, load_study, run_trial_slot

        features = self._features(cell.dataset)
        display.cell(f"tuning {cell.dataset} · {cell.variant} · dropout {cell.dropout:g}")
        display.detail(f"trial {slot + 1}/{self.config.trials}")
        started = time.perf_counter()
        splits = {s: t.to(self.config.device) for s, t in features.splits.items()}
        fixed = default_trial_params(cell.strategy) if slot == 0 else None
        study = load_study(study_key, self.storage, self.config.trials, slot, fixed)
        run_trial_slot(study, slot, cell.strategy, cell.fixed_hparams, features, splits["train"],
                       splits["validation"], self._base_config(cell, seed=0))
        self.phases["tuning"] += time.perf_counter() - started

    def _cell(self, study_key: str, cell: Cell, display) -> None:
        from benchmark.tuning import load_study

        display.cell(cell.label())
        key = cell_hash(cell, self.config)
        if self.tracker.is_finished(key):  # finished by a worker killed before it marked the unit done
            self.outcome.skipped += 1
            return
        features = self._features(cell.dataset)
        self.tracker.discard_unfinished(key)
        run_id = self.tracker.start_cell(key, cell.label(), {
            "strategy": cell.variant, "dataset": cell.dataset, "worker": self.worker_id,
            "family": discover().get(cell.strategy).family, "modality_dropout": f"{cell.dropout:g}",
            "seed": str(cell.seed)})
        started = time.perf_counter()
        try:
            time.sleep(FAULT_CELL_DELAY_S)  # fault injection for tests: widen the mid-cell window
            splits = {s: t.to(self.config.device) for s, t in features.splits.items()}
            study = load_study(study_key, self.storage, self.config.trials)
            result = run_cell(cell, features, splits, study, self.config, display)
            self.tracker.finish_cell(run_id, result.params(), result.metrics(), {"family": result.family},
                                     result.to_dict())
            self.outcome.completed.append(result)
        except Exception as exc:  # noqa: BLE001 - a failed cell is recorded and the matrix goes on
            if is_store_outage(exc):
                raise  # the store, not the cell, failed: handled by the retry around the unit
            message = f"{type(exc).__name__}: {exc}"
            self.tracker.fail_cell(run_id, message + "\n" + traceback.format_exc(limit=5))
            self.outcome.failed.append((cell.label(), message))
            self.log(f"FAILED {cell.label()}: {message}")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        self.phases["final_runs"] += time.perf_counter() - started


def run_cell(cell: Cell, features: FeatureSet, splits, study, config: MatrixConfig, display) -> RunResult:
    """Retrain the tuned and the default hyperparameters with this cell's seed; evaluate on test."""
    started = time.perf_counter()
    device = config.device
    default_model, default_training = default_params(cell.strategy)
    completed = [t for t in budget_trials(study) if t.state.name == "COMPLETE" and t.value is not None]
    if config.trials > 0 and not completed:
        raise RuntimeError(f"no tuning trial of study {study.study_name!r} completed; see its failed trials")
    if completed:
        best = max(completed, key=lambda t: t.value)
        tuned_model, tuned_training = split_params(best.params)
        best_val = float(best.value)
    else:
        tuned_model, tuned_training, best_val = dict(default_model), dict(default_training), float("nan")
    hparams = {**default_model, **tuned_model, **cell.fixed_hparams}
    training = {**default_training, **tuned_training}
    run_config = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, modality_dropout=cell.dropout,
                             seed=cell.seed, device=device, **training)
    with PeakMemory(device) as memory:
        model = build_model(cell.strategy, features, hparams, cell.seed)
        stats = train(model, splits["train"], features.modalities, run_config,
                      on_epoch=lambda e, m: display.detail(f"seed {cell.seed} epoch {e + 1}/{config.epochs}"))
        test = evaluate(model, splits["test"], features.modalities, seed=1000 + cell.seed)
    n_params = parameter_count(model)
    if best_val != best_val:  # no tuning: report this model's validation accuracy instead
        best_val = full_accuracy(model, splits["validation"], features.modalities)
    if tuned_model == default_model and tuned_training == default_training:
        default_accuracy = test.accuracy  # the defaults won tuning: same seed, same model, same result
    else:
        default_config = TrainConfig(epochs=config.epochs, batch_size=config.batch_size,
                                     modality_dropout=cell.dropout, seed=cell.seed, device=device, **default_training)
        default = build_model(cell.strategy, features, {**default_model, **cell.fixed_hparams}, cell.seed)
        train(default, splits["train"], features.modalities, default_config,
              on_epoch=lambda e, m: display.detail(f"defaults, seed {cell.seed} epoch {e + 1}/{config.epochs}"))
        default_accuracy = full_accuracy(default, splits["test"], features.modalities)
    tensor_memory = training_step_tensor_mb(model, splits["train"], features.modalities, config.batch_size)
    return RunResult(
        cell=cell, family=type(model).family, hparams=hparams, training=training,
        test_accuracy=test.accuracy, test_macro_f1=test.macro_f1, subset_accuracy=test.subset_accuracy,
        missing_curve=test.missing_curve, robustness=test.robustness, default_test_accuracy=default_accuracy,
        best_val_accuracy=best_val, param_count=n_params, train_samples_per_s=stats.train_samples_per_s,
        inference_samples_per_s=test.inference_samples_per_s, latency_ms_per_batch=test.latency_ms_per_batch,
        seconds_per_epoch=stats.seconds_per_epoch, memory={**memory.metrics(), **tensor_memory},
        device=device, wall_seconds=time.perf_counter() - started,
    )
