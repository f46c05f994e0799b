"""The per-cell protocol: retrain a study's best hyperparameters and the strategy's defaults
with the cell's seed, evaluate on the test split, and measure cost. -> a RunResult."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from benchmark.features.tensors import FeatureSet
from benchmark.train.cost import PeakMemory, parameter_count, training_step_tensor_mb
from benchmark.train.evaluation import evaluate, full_accuracy
from benchmark.train.loop import TrainConfig, train
from benchmark.train.model import build_model
from benchmark.train.results import Cell, RunResult
from benchmark.train.tuning import budget_trials, default_params, split_params


@dataclass(frozen=True)
class CellBudget:
    """What every cell of a matrix gets: epochs, batch size, the tuning trials of its study, the device."""

    epochs: int
    batch_size: int
    trials: int
    device: str


def run_cell(cell: Cell, features: FeatureSet, splits, study, config: CellBudget,
             progress: Callable[[str], None] = lambda _: None) -> RunResult:
    """Retrain the tuned and the default hyperparameters with this cell's seed; evaluate on test.
    ``splits``: split name -> SplitTensors on ``config.device``; ``study``: the cell's Optuna study."""
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
                      on_epoch=lambda e, m: progress(f"seed {cell.seed} epoch {e + 1}/{config.epochs}"))
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
              on_epoch=lambda e, m: progress(f"defaults, seed {cell.seed} epoch {e + 1}/{config.epochs}"))
        default_accuracy = full_accuracy(default, splits["test"], features.modalities)
    tensor_memory = training_step_tensor_mb(model, splits["train"], features.modalities, config.batch_size)
    return RunResult(
        cell=cell, family=model.family, hparams=hparams, training=training,
        test_accuracy=test.accuracy, test_macro_f1=test.macro_f1, subset_accuracy=test.subset_accuracy,
        missing_curve=test.missing_curve, robustness=test.robustness, default_test_accuracy=default_accuracy,
        best_val_accuracy=best_val, param_count=n_params, train_samples_per_s=stats.train_samples_per_s,
        inference_samples_per_s=test.inference_samples_per_s, latency_ms_per_batch=test.latency_ms_per_batch,
        seconds_per_epoch=stats.seconds_per_epoch, memory={**memory.metrics(), **tensor_memory},
        device=device, wall_seconds=time.perf_counter() - started,
    )
