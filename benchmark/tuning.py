"""Optuna tuning from outside the training loop: the objective builds hyperparameters from
a trial using the strategy's declared search space, calls the shared loop, and reports the
validation accuracy each epoch for pruning. Studies live in an RDB storage (SQLite by
default) and are reloaded on re-runs, so only the missing trials are run."""

from __future__ import annotations

import logging
from typing import Any, Callable

import optuna

from benchmark.evaluation import full_accuracy
from benchmark.features import FeatureSet, SplitTensors
from benchmark.training import TrainConfig, build_model, train
from strategies import get_strategy
from strategies.search_space import Categorical, FloatParam, IntParam, Param

optuna.logging.set_verbosity(logging.WARNING)

TRAINING_SPACE: dict[str, Param] = {
    "lr": FloatParam(1e-4, 1e-2, default=1e-3, log=True),
    "weight_decay": FloatParam(1e-6, 1e-2, default=1e-4, log=True),
}


def suggest(trial: optuna.Trial, space: dict[str, Param], prefix: str = "") -> dict[str, Any]:
    values = {}
    for name, param in space.items():
        key = prefix + name
        if isinstance(param, IntParam):
            values[name] = trial.suggest_int(key, param.low, param.high, log=param.log)
        elif isinstance(param, FloatParam):
            values[name] = trial.suggest_float(key, param.low, param.high, log=param.log)
        elif isinstance(param, Categorical):
            values[name] = trial.suggest_categorical(key, list(param.choices))
        else:
            raise TypeError(f"unsupported search-space entry {name!r}: {param!r}")
    return values


def default_params(strategy: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model hyperparameters, training hyperparameters) at their declared defaults."""
    cls = get_strategy(strategy)
    return ({k: p.default for k, p in cls.search_space.items()}, {k: p.default for k, p in TRAINING_SPACE.items()})


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a flat Optuna parameter dict into (model 'hp.*', training 'train.*') dicts."""
    model = {k[3:]: v for k, v in params.items() if k.startswith("hp.")}
    training = {k[6:]: v for k, v in params.items() if k.startswith("train.")}
    return model, training


def tune(study_name: str, storage: str, strategy: str, fixed_hparams: dict[str, Any], features: FeatureSet,
         train_split: SplitTensors, val_split: SplitTensors, base: TrainConfig, n_trials: int,
         on_trial: Callable[[int, int], None] | None = None) -> optuna.Study:
    """Run the trials still missing from the study (TPE + median pruning on validation accuracy)."""
    study = optuna.create_study(
        study_name=study_name, storage=storage, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=max(1, min(5, n_trials // 2))),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=max(1, base.epochs // 3)),
    )
    # Trials left RUNNING by a killed process are failed so the budget counts only real work.
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    done = sum(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in study.trials)
    cls = get_strategy(strategy)

    def objective(trial: optuna.Trial) -> float:
        hparams = {**suggest(trial, cls.search_space, "hp."), **fixed_hparams}
        training = suggest(trial, TRAINING_SPACE, "train.")
        config = TrainConfig(**{**base.__dict__, **training})
        model = build_model(strategy, features, hparams, config.seed)
        best = 0.0

        def report(epoch: int, model) -> None:
            nonlocal best
            acc = full_accuracy(model, val_split, features.modalities)
            best = max(best, acc)
            trial.report(acc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        train(model, train_split, features.modalities, config, on_epoch=report)
        return full_accuracy(model, val_split, features.modalities)

    for index in range(done, n_trials):
        study.optimize(objective, n_trials=1, catch=(RuntimeError, ValueError))
        if on_trial:
            on_trial(index + 1, n_trials)
    return study
