"""The per-cell protocol: retrain a study's best hyperparameters and the strategy's defaults
with the cell's seed (early stopping on the validation split, best weights restored), evaluate
on the test split next to the reference predictors, and measure cost. -> a RunResult."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from benchmark.features.tensors import FeatureSet
from benchmark.train.cost import PeakMemory, parameter_count, training_step_tensor_mb
from benchmark.train.evaluation import References, evaluate, full_accuracy
from benchmark.train.loop import TrainConfig, train
from benchmark.train.model import build_model
from benchmark.train.results import Cell, RunResult
from benchmark.train.tuning import budget_trials, default_params, split_params


@dataclass(frozen=True)
class CellBudget:
    """What every cell of a matrix gets: the epoch cap and early-stopping patience, batch size,
    the tuning trials of its study, the device."""

    epochs: int
    batch_size: int
    trials: int
    device: str
    patience: int = 5

    def train_config(self, cell: Cell, metric: str, **training) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, modality_dropout=cell.dropout,
                           seed=cell.seed, device=self.device, patience=self.patience, metric=metric, **training)


def run_cell(cell: Cell, features: FeatureSet, splits, study, config: CellBudget, metric: str = "accuracy",
             progress: Callable[[str], None] = lambda _: None) -> RunResult:
    """Retrain the tuned and the default hyperparameters with this cell's seed; evaluate on test.
    ``splits``: split name -> SplitTensors on ``config.device``; ``study``: the cell's Optuna study;
    ``metric``: the dataset's ranking metric, which early stopping maximises on validation."""
    started = time.perf_counter()
    device = config.device
    default_model, default_training = default_params(cell.strategy)
    completed = [t for t in budget_trials(study) if t.state.name == "COMPLETE" and t.value is not None]
    if config.trials > 0 and not completed:
        raise RuntimeError(f"no tuning trial of study {study.study_name!r} completed; see its failed trials")
    if completed:
        best = max(completed, key=lambda t: t.value)
        tuned_model, tuned_training = split_params(best.params)
    else:
        tuned_model, tuned_training = dict(default_model), dict(default_training)
    hparams = {**default_model, **tuned_model, **cell.fixed_hparams}
    training = {**default_training, **tuned_training}
    references = References.of(splits["train"].labels, splits["test"].labels, features.num_classes)

    def show(what: str):
        return lambda epoch, score: progress(f"{what}seed {cell.seed} epoch {epoch + 1} (cap {config.epochs}), "
                                             f"validation {metric} {score:.3f}")

    with PeakMemory(device) as memory:
        model = build_model(cell.strategy, features, hparams, cell.seed)
        stats = train(model, splits["train"], features.modalities, config.train_config(cell, metric, **training),
                      val_split=splits["validation"], on_epoch=show(""))
        test = evaluate(model, splits["test"], features.modalities, references, seed=1000 + cell.seed, metric=metric)
    n_params = parameter_count(model)
    if tuned_model == default_model and tuned_training == default_training:
        default_accuracy = test.accuracy  # the defaults won tuning: same seed, same model, same result
    else:
        default = build_model(cell.strategy, features, {**default_model, **cell.fixed_hparams}, cell.seed)
        train(default, splits["train"], features.modalities, config.train_config(cell, metric, **default_training),
              val_split=splits["validation"], on_epoch=show("defaults, "))
        default_accuracy = full_accuracy(default, splits["test"], features.modalities)
    tensor_memory = training_step_tensor_mb(model, splits["train"], features.modalities, config.batch_size)
    return RunResult(
        cell=cell, family=model.family, hparams=hparams, training=training,
        test_accuracy=test.accuracy, test_macro_f1=test.macro_f1, subset_accuracy=test.subset_accuracy,
        missing_curve=test.missing_curve, robustness=test.robustness, default_test_accuracy=default_accuracy,
        best_val_score=stats.best_score, param_count=n_params, train_samples_per_s=stats.train_samples_per_s,
        inference_samples_per_s=test.inference_samples_per_s, latency_ms_per_batch=test.latency_ms_per_batch,
        seconds_per_epoch=stats.seconds_per_epoch, memory={**memory.metrics(), **tensor_memory},
        device=device, wall_seconds=time.perf_counter() - started,
        ranking_metric=metric, epochs_run=stats.epochs_run, best_epoch=stats.best_epoch,
        stop_reason=stats.stop_reason, collapsed=test.collapsed, not_converged=not stats.converged,
        largest_class_share=test.largest_class_share, references=references,
        curves={"train_loss": stats.train_loss, "val_metric": stats.val_score, "lr": stats.lr},
        missing_curve_macro_f1=test.missing_curve_macro_f1,
    )
