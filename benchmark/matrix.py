"""Run a benchmark matrix: strategies x datasets x training dropout rates x seeds.

For each (dataset, strategy, dropout) one Optuna study gets the same trial budget; its
best hyperparameters are retrained with every seed and evaluated on the test split, next
to the strategy's defaults on the same seeds (the tuning gain). Finished cells are found
by configuration hash in MLflow and skipped, so an interrupted run resumes."""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from benchmark.cards import load_all_cards
from benchmark.config import MatrixConfig, expand
from benchmark.cost import parameter_count, peak_memory, reset_peak_memory
from benchmark.evaluation import evaluate, full_accuracy
from benchmark.features import FeatureSet, build_features
from benchmark.progress import MatrixDisplay
from benchmark.results import Cell, RunResult
from benchmark.tracking import MatrixTracker
from benchmark.training import TrainConfig, build_model, train
from benchmark.tuning import default_params, split_params, tune
from strategies import discover, load_plugin


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


def run_matrix(config: MatrixConfig, tracking_uri: str, storage: str, log: Callable[[str], None] = print) -> MatrixOutcome:
    device = config.device
    cells = plan_cells(config)
    tracker = MatrixTracker(tracking_uri, config.matrix_id(), asdict(config), device)
    outcome = MatrixOutcome(config.matrix_id(), tracker.parent_id)
    phases = {"data_and_encoding": 0.0, "tuning": 0.0, "final_runs": 0.0}
    finished = tracker.finished_cells()
    todo = [c for c in cells if cell_hash(c, config) not in finished]
    outcome.skipped = len(cells) - len(todo)
    log(f"matrix {outcome.matrix_id}: {len(cells)} cells, {outcome.skipped} already finished, {len(todo)} to run")
    features_by_dataset: dict[str, FeatureSet] = {}
    studies: dict[str, object] = {}
    with MatrixDisplay(total=len(cells), done=outcome.skipped) as display:
        for cell in todo:
            display.cell(cell.label())
            started = time.perf_counter()
            if cell.dataset not in features_by_dataset:
                from benchmark.cards import find_card

                features_by_dataset[cell.dataset] = build_features(find_card(cell.dataset), log=log)
            features = features_by_dataset[cell.dataset]
            phases["data_and_encoding"] += time.perf_counter() - started
            key = cell_hash(cell, config)
            tracker.discard_unfinished(key)
            run_id = tracker.start_cell(key, cell.label(), {"strategy": cell.variant, "dataset": cell.dataset})
            try:
                splits = {s: t.to(device) for s, t in features.splits.items()}
                base = TrainConfig(epochs=config.epochs, batch_size=config.batch_size,
                                   modality_dropout=cell.dropout, seed=0, device=device)
                study_key = cell.study_name(budget_tag(config))
                t0 = time.perf_counter()
                if study_key not in studies:
                    studies[study_key] = tune(
                        study_key, storage, cell.strategy, cell.fixed_hparams, features, splits["train"],
                        splits["validation"], base, config.trials,
                        on_trial=lambda i, n: display.detail(f"tuning trial {i}/{n}"))
                study = studies[study_key]
                phases["tuning"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                result = run_cell(cell, features, splits, study, config, display)
                phases["final_runs"] += time.perf_counter() - t0
                tracker.finish_cell(run_id, result.params(), result.metrics(),
                                    {"family": result.family}, result.to_dict())
                outcome.completed.append(result)
            except Exception as exc:  # noqa: BLE001 - a failed cell is recorded and the matrix goes on
                message = f"{type(exc).__name__}: {exc}"
                tracker.fail_cell(run_id, message + "\n" + traceback.format_exc(limit=5))
                outcome.failed.append((cell.label(), message))
                log(f"FAILED {cell.label()}: {message}")
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            display.advance()
    outcome.phase_seconds = phases
    return outcome


def run_cell(cell: Cell, features: FeatureSet, splits, study, config: MatrixConfig, display) -> RunResult:
    """Retrain the tuned and the default hyperparameters with this cell's seed; evaluate on test."""
    started = time.perf_counter()
    device = config.device
    default_model, default_training = default_params(cell.strategy)
    completed = [t for t in study.trials if t.value is not None and t.state.name == "COMPLETE"]
    if config.trials > 0 and not completed:
        raise RuntimeError(f"no tuning trial of study {study.study_name!r} completed; see its failed trials")
    if completed:
        tuned_model, tuned_training = split_params(study.best_trial.params)
        best_val = float(study.best_value)
    else:
        tuned_model, tuned_training, best_val = dict(default_model), dict(default_training), float("nan")
    hparams = {**default_model, **tuned_model, **cell.fixed_hparams}
    training = {**default_training, **tuned_training}
    run_config = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, modality_dropout=cell.dropout,
                             seed=cell.seed, device=device, **training)
    reset_peak_memory(device)
    model = build_model(cell.strategy, features, hparams, cell.seed)
    stats = train(model, splits["train"], features.modalities, run_config,
                  on_epoch=lambda e, m: display.detail(f"seed {cell.seed} epoch {e + 1}/{config.epochs}"))
    test = evaluate(model, splits["test"], features.modalities, seed=1000 + cell.seed)
    memory_metric, memory_mb = peak_memory(device)
    n_params = parameter_count(model)
    if best_val != best_val:  # no tuning: report this model's validation accuracy instead
        best_val = full_accuracy(model, splits["validation"], features.modalities)
    default_config = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, modality_dropout=cell.dropout,
                                 seed=cell.seed, device=device, **default_training)
    default = build_model(cell.strategy, features, {**default_model, **cell.fixed_hparams}, cell.seed)
    train(default, splits["train"], features.modalities, default_config,
          on_epoch=lambda e, m: display.detail(f"defaults, seed {cell.seed} epoch {e + 1}/{config.epochs}"))
    default_accuracy = full_accuracy(default, splits["test"], features.modalities)
    return RunResult(
        cell=cell, family=type(model).family, hparams=hparams, training=training,
        test_accuracy=test.accuracy, test_macro_f1=test.macro_f1, subset_accuracy=test.subset_accuracy,
        missing_curve=test.missing_curve, robustness=test.robustness, default_test_accuracy=default_accuracy,
        best_val_accuracy=best_val, param_count=n_params, train_samples_per_s=stats.train_samples_per_s,
        inference_samples_per_s=test.inference_samples_per_s, latency_ms_per_batch=test.latency_ms_per_batch,
        seconds_per_epoch=stats.seconds_per_epoch, memory_metric=memory_metric, memory_mb=memory_mb,
        device=device, wall_seconds=time.perf_counter() - started,
    )
