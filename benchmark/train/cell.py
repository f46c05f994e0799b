"""The per-cell protocol: retrain a study's best hyperparameters and the strategy's defaults
with each cell's seed (the seeds of a study stacked into one computation where they can be) (early stopping on the validation split, best weights restored), evaluate
on the test split next to the reference predictors, and measure cost. -> a RunResult."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from benchmark.features.tensors import FeatureSet
from benchmark.train.cost import PeakMemory, parameter_count, training_step_tensor_mb
from benchmark.train.energy import EnergyMeter, inference_energy, shares
from benchmark.train.evaluation import References, evaluate, full_score
from benchmark.train.loop import TrainConfig
from benchmark.train.model import build_model
from benchmark.train.results import Cell, RunResult
from benchmark.train.stacked import train_together
from benchmark.train.tasks import Task
from benchmark.train.tuning import default_params, finetunes, split_params, winning_trial
from benchmark.train.zero_shot import zero_shot_scores


@dataclass(frozen=True)
class CellBudget:
    """What every cell of a matrix gets: the epoch cap and early-stopping patience, batch size,
    whether its study is tuned, the device."""

    epochs: int
    batch_size: int
    # Whether the cells' study has trial slots (the profile's ``trials`` > 0): a tuned cell must find
    # a completed trial to retrain; an untuned one retrains the defaults. How many trials a study
    # gets is the Plan's (benchmark/run/plan.py, trial_slots_per_study), never the cell's.
    tuned: bool
    device: str
    patience: int = 5
    amp: str = "off"
    min_epochs: int = 10
    patience_ratio: float = 0.0

    @classmethod
    def of(cls, config) -> "CellBudget":
        """The budget of a matrix configuration (benchmark/run/config.py, MatrixConfig)."""
        return cls(config.epochs, config.batch_size, config.trials > 0, config.device, config.patience, config.amp,
                   config.min_epochs, config.patience_ratio)

    def train_config(self, cell: Cell, metric: str, task: Task | None = None, **training) -> TrainConfig:
        """The cell's training config; ``task`` (default multiclass) sets the loss."""
        task = task or Task()
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, modality_dropout=cell.dropout,
                           seed=cell.seed, device=self.device, patience=self.patience, metric=metric, amp=self.amp,
                           task=task.kind, regression_loss=task.regression_loss, min_epochs=self.min_epochs,
                           patience_ratio=self.patience_ratio, **training)


def run_cells(cells: list[Cell], features: FeatureSet, splits, study, config: CellBudget, metric: str = "accuracy",
              progress: Callable[[str], None] = lambda _: None, log: Callable[[str], None] = lambda _: None,
              stack: bool = True) -> list[RunResult]:
    """Cells of one study (its seeds): retrain the tuned and the default hyperparameters with each
    cell's seed, the seeds trained as one stacked computation where they can be (and, when their
    shapes agree, the default retrains in the same stack); evaluate each on test.
    ``splits``: split name -> SplitTensors; ``study``: the cells' Optuna study; ``metric``: the
    dataset's ranking metric, which early stopping maximises on validation. -> one result per cell."""
    started = time.perf_counter()
    device = config.device
    strategy, fixed = cells[0].strategy, cells[0].fixed_hparams
    default_model, default_training = default_params(strategy, finetunes(features))
    best = winning_trial(study, metric)  # in the metric's direction (mae: the lowest)
    if config.tuned and best is None:
        raise RuntimeError(f"no tuning trial of study {study.study_name!r} completed; see its failed trials")
    if best is not None:
        tuned_model, tuned_training = split_params(best.params)
    else:
        tuned_model, tuned_training = dict(default_model), dict(default_training)
    hparams = {**default_model, **tuned_model, **fixed}
    default_hparams = {**default_model, **fixed}
    training = {**default_training, **tuned_training}
    defaults_won = tuned_model == default_model and tuned_training == default_training
    task = Task.of(features)
    references = References.of(splits["train"].labels, splits["test"].labels, features.num_classes, task)
    zero_shot = zero_shot_scores(features, splits, task)  # {} unless the card's image modality uses a CLIP encoder
    adapted = features.zero_shot is not None and features.zero_shot.adapted  # a CLIP adapted to the card's pairs
    seeds = [c.seed for c in cells]

    # Every run to train: the tuned configuration per seed, then (unless tuning picked the
    # defaults) the defaults per seed. Runs whose model shapes agree go into one stack.
    runs = [(hparams, c, training, "") for c in cells]
    if not defaults_won:
        runs += [(default_hparams, c, default_training, "defaults, ") for c in cells]
    groups: dict[str, list[int]] = {}
    for k, (model_hparams, _, run_training, _) in enumerate(runs):
        key = repr(sorted(model_hparams.items())) + repr(run_training.get("batch_size"))
        groups.setdefault(key, []).append(k)

    with PeakMemory(device) as memory:
        models = [build_model(strategy, features, model_hparams, c.seed) for model_hparams, c, _, _ in runs]
        configs = [config.train_config(c, metric, task, **run_training) for _, c, run_training, _ in runs]
        stats: list = [None] * len(runs)
        energy: list = [None] * len(runs)  # joules per run, its share of its group's (energy.shares), and source
        for members in groups.values():
            # In-model dropout masks come from the global generator, seeded by each run (loop.train)
            # or each stack (stacked.train_stacked) from its own seed: the defaults' retrain draws the
            # same masks whatever trained before it (and so tuning_gain does not vary with what tuning picked).
            def show(i, epoch, score, members=members):
                _, c, _, what = runs[members[i]]
                progress(f"{what}seed {c.seed} epoch {epoch + 1} (cap {config.epochs}), validation {metric} {score:.3f}")

            with EnergyMeter(device) as meter:
                trained = train_together([models[k] for k in members], splits["train"], features.modalities,
                                         [configs[k] for k in members], splits["validation"], show, stack, log)
            for k, run_stats in zip(members, trained):
                stats[k] = run_stats
            if meter.reading is not None:
                for k, joules in zip(members, shares(meter.reading.joules, [s.epochs_run for s in trained])):
                    energy[k] = (joules, meter.reading.source)
        tests = [evaluate(models[k], splits["test"], features.modalities, references, seed=1000 + c.seed, metric=metric,
                          class_names=features.class_names) for k, c in enumerate(cells)]
        # One model of the study stands for its seeds (same shape, like param_count): (J per 1,000, source) or None.
        inference = inference_energy(models[0], splits["test"], features.modalities, tests[0].inference_samples_per_s,
                                     device)
    # The defaults' retrain scored on test in the ranking metric (and in accuracy for multiclass).
    default_metrics = (metric, "accuracy") if task.kind == "multiclass" else (metric,)
    if defaults_won:  # the defaults won tuning: same seed, same model, same result
        default_scores = [{m: t.score(m) for m in default_metrics} for t in tests]
    else:
        default_scores = [{m: full_score(models[len(cells) + k], splits["test"], features.modalities, m, task)
                           for m in default_metrics} for k in range(len(cells))]
    n_params = parameter_count(models[0])
    tensor_memory = training_step_tensor_mb(models[0], splits["train"], features.modalities, config.batch_size)
    wall = (time.perf_counter() - started) / len(cells)  # the group's wall time, shared evenly
    if len(cells) > 1:
        log(f"{cells[0].dataset} · {cells[0].variant}: seeds {', '.join(map(str, seeds))} trained in "
            f"{wall * len(cells):.1f}s (stacked with {max(s.stacked_with for s in stats)})")
    results = []
    for cell, test, run_stats, default, spent in zip(cells, tests, stats, default_scores, energy):
        results.append(RunResult(
            cell=cell, family=models[0].family, hparams=hparams, training=training,
            task=task.kind, scores=test.scores, subset_scores=test.subset_scores, missing_scores=test.missing_scores,
            robustness=test.robustness, default_scores=default,
            best_val_score=run_stats.best_score, param_count=n_params, train_samples_per_s=run_stats.train_samples_per_s,
            inference_samples_per_s=test.inference_samples_per_s, latency_ms_per_batch=test.latency_ms_per_batch,
            seconds_per_epoch=run_stats.seconds_per_epoch, memory={**memory.metrics(), **tensor_memory},
            device=device, wall_seconds=wall,
            ranking_metric=metric, epochs_run=run_stats.epochs_run, best_epoch=run_stats.best_epoch,
            stop_reason=run_stats.stop_reason, collapsed=test.collapsed, not_converged=not run_stats.converged,
            largest_class_share=test.largest_class_share, references=references,
            curves={"train_loss": run_stats.train_loss, "val_metric": run_stats.val_score, "lr": run_stats.lr},
            stacked_with=run_stats.stacked_with, data_rows=features.data_row_counts(splits), confusion=test.confusion,
            modality_missing_scores=test.modality_missing_scores, modality_robustness=test.modality_robustness,
            zero_shot={} if adapted else zero_shot, zero_shot_adapted=zero_shot if adapted else {},
            calibration=test.calibration, missing_calibration=test.missing_calibration,
            modality_missing_calibration=test.modality_missing_calibration, predictions=test.predictions,
            reliance=test.reliance,
            **_energy_fields(spent, inference),
        ))
    return results


def _energy_fields(training: tuple[float, str] | None, inference: tuple[float, str] | None) -> dict:
    """A cell's energy fields of its RunResult: training energy (J -> Wh) and energy per 1,000 inferences,
    each where its meter gave a reading; the source is the training's (the inference's where only it read)."""
    fields = {}
    if training is not None:
        fields["energy_train_wh"], fields["energy_source"] = training[0] / 3600.0, training[1]
    if inference is not None:
        fields["energy_per_1k_inferences_j"] = inference[0]
        fields.setdefault("energy_source", inference[1])
    return fields
