"""Optuna tuning from outside the training loop: the objective builds hyperparameters from
a trial using the strategy's declared search space, calls the shared loop (early stopping on
the validation score), and reports the validation score each epoch to a successive-halving
pruner. Trials train with their own seeds, which no evaluation uses. Studies live in an RDB
storage (SQLite by default) and are reloaded on re-runs, so only the missing trials are run.

The budget unit is the trial: every trial of every strategy has the same epoch cap and meets
the same pruning rungs, so each strategy gets the same maximum compute; a strategy that
converges fast stops its trials early and spends less, but never gets more trials for it."""

from __future__ import annotations

import hashlib
import logging
import warnings
from typing import Any

import optuna

from benchmark.features.tensors import FeatureSet, SplitTensors
from benchmark.stores.retry import is_store_outage
from benchmark.vocabulary import higher_is_better
from benchmark.train.loop import TrainConfig, train
from benchmark.train.model import build_model
from benchmark.train.seeds import tuning_seed
from strategies import get_strategy
from strategies.search_space import Categorical, FloatParam, IntParam, Param, defaults

optuna.logging.set_verbosity(logging.WARNING)

# Successive halving (asynchronous, so parallel workers need not wait): a trial is compared
# with the others of its study at epochs 2, 6, 18, ... and stopped unless in the top third.
PRUNER_MIN_EPOCHS, PRUNER_REDUCTION = 2, 3

TRAINING_SPACE: dict[str, Param] = {
    "lr": FloatParam(1e-4, 1e-2, default=1e-3, log=True),
    "weight_decay": FloatParam(1e-6, 1e-2, default=1e-4, log=True),
}
# Tuned only where a pretrained encoder is fine-tuned (benchmark/features/finetune.py): the rate of its
# parameters, smaller than the fusion model's (pretrained weights move little), under the same schedule.
ENCODER_SPACE: dict[str, Param] = {
    "encoder_lr": FloatParam(1e-5, 1e-3, default=1e-4, log=True),
}


def training_space(finetuned: bool = False) -> dict[str, Param]:
    """The training hyperparameters a study tunes: TRAINING_SPACE, plus ENCODER_SPACE when the model
    fine-tunes a pretrained encoder (a frozen study's space, and so its identity, is unchanged)."""
    return {**TRAINING_SPACE, **ENCODER_SPACE} if finetuned else dict(TRAINING_SPACE)


def finetunes(features: FeatureSet) -> bool:
    """Whether a model on ``features`` fine-tunes a pretrained encoder."""
    return any(front_end.pretrained for front_end in features.front_ends.values())


def distribution(param: Param) -> optuna.distributions.BaseDistribution:
    """A declared search-space entry as the Optuna distribution a trial samples it from: the one
    place that maps the kinds of strategies.search_space to Optuna (``suggest`` samples from it,
    study_tags.py records it)."""
    if isinstance(param, IntParam):
        return optuna.distributions.IntDistribution(param.low, param.high, log=param.log)
    if isinstance(param, FloatParam):
        return optuna.distributions.FloatDistribution(param.low, param.high, log=param.log)
    if isinstance(param, Categorical):
        return optuna.distributions.CategoricalDistribution(list(param.choices))
    raise TypeError(f"unsupported search-space entry: {param!r}")


# Optuna's public call that samples from each kind of distribution (Trial has no public
# "suggest from this distribution"); each builds the same distribution again from these fields.
_SUGGEST = {
    optuna.distributions.IntDistribution: lambda trial, key, d: trial.suggest_int(key, d.low, d.high, log=d.log),
    optuna.distributions.FloatDistribution: lambda trial, key, d: trial.suggest_float(key, d.low, d.high, log=d.log),
    optuna.distributions.CategoricalDistribution: lambda trial, key, d: trial.suggest_categorical(key, list(d.choices)),
}


def suggest(trial: optuna.Trial, space: dict[str, Param], prefix: str = "") -> dict[str, Any]:
    """A value for every entry of ``space``, sampled by ``trial`` under the name ``prefix + name``
    from the entry's :func:`distribution`."""
    values = {}
    for name, param in space.items():
        try:
            found = distribution(param)
        except TypeError:
            raise TypeError(f"unsupported search-space entry {name!r}: {param!r}") from None
        values[name] = _SUGGEST[type(found)](trial, prefix + name, found)
    return values


def default_params(strategy: str, finetuned: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model hyperparameters, training hyperparameters) at their declared defaults (``finetuned``:
    with the encoder learning rate's)."""
    return defaults(get_strategy(strategy).search_space), defaults(training_space(finetuned))


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a flat Optuna parameter dict into (model 'hp.*', training 'train.*') dicts."""
    model = {k[3:]: v for k, v in params.items() if k.startswith("hp.")}
    training = {k[6:]: v for k, v in params.items() if k.startswith("train.")}
    return model, training


def default_trial_params(strategy: str, finetuned: bool = False) -> dict[str, Any]:
    """The strategy's defaults as flat Optuna parameters ('hp.*', 'train.*')."""
    model, training = default_params(strategy, finetuned)
    return {**{f"hp.{k}": v for k, v in model.items()}, **{f"train.{k}": v for k, v in training.items()}}


def load_study(study_name: str, storage, trial_slots: int, slot: int = 0,
               fixed: dict[str, Any] | None = None, metric: str = "accuracy", seed: int | None = None) -> optuna.Study:
    """Create or reload a study. ``trial_slots``: the study's trial budget (the Plan's
    ``trial_slots_per_study``, which the Plan enforces); here it only sets how many of the first
    trials TPE samples at random. ``seed``: the TPE seed of this slot (seeds.sampler_seed; by
    default one from the study name and the slot). ``fixed`` pins parameters (slot 0 evaluates
    the strategy's defaults, so tuning never ranks below them). ``metric`` (the card's ranking
    metric, scored on validation) sets the direction: minimise for mae and rmse, else maximise."""
    if seed is None:
        seed = int(hashlib.sha256(f"{study_name}#{slot}".encode()).hexdigest()[:8], 16)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, min(5, trial_slots // 2)))
    if fixed:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.PartialFixedSampler(fixed, sampler)
    return optuna.create_study(
        study_name=study_name, storage=storage, direction=study_direction(metric), load_if_exists=True,
        sampler=sampler,
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=PRUNER_MIN_EPOCHS,
                                                      reduction_factor=PRUNER_REDUCTION),
    )


def study_direction(metric: str) -> str:
    return "maximize" if higher_is_better(metric) else "minimize"


def winning_trial(study: optuna.Study, metric: str) -> optuna.trial.FrozenTrial | None:
    """The trial whose hyperparameters a study's cells retrain (benchmark/train/cell.py) and name in
    their tags (study_tags.py): the best completed budget trial in ``metric``'s direction on
    validation, the first of equals; None when no budget trial completed."""
    completed = [t for t in budget_trials(study) if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
    if not completed:
        return None
    sign = 1.0 if higher_is_better(metric) else -1.0
    return max(completed, key=lambda t: sign * t.value)  # max keeps the first of equals


class TrialFailed(Exception):
    """Any error of a trial's own (NaN loss, impossible hyperparameters, a bug in a plugin
    strategy): Optuna records the trial as failed and the study goes on."""


STALE_ATTR = "stale_trials"  # study user attribute: numbers of trials abandoned by killed workers


def stale_trials(study: optuna.Study) -> set[int]:
    return set(study.user_attrs.get(STALE_ATTR, []))


def slot_trials(study: optuna.Study, slot: int) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("slot") == slot]


def run_trial_slot(study: optuna.Study, slot: int, strategy: str, fixed_hparams: dict[str, Any],
                   features: FeatureSet, train_split: SplitTensors, val_split: SplitTensors,
                   base: TrainConfig, draw: int = 0) -> optuna.trial.FrozenTrial | None:
    """Run trial number ``slot`` of the study's budget (training with seed tuning_seed(slot, draw)),
    unless a finished trial already holds that slot. Stale RUNNING trials of the slot (a killed
    worker, a dead Ray node) are failed first, so they take no budget slot; the caller is the slot's
    only runner (one Ray task, or the in-process runner, under the matrix's one driver), so nobody
    else is running it."""
    previous = slot_trials(study, slot)
    stale = stale_trials(study)
    finished = [t for t in previous if is_final(t, stale)]
    if finished:
        return finished[0]
    for trial in previous:
        if trial.state == optuna.trial.TrialState.RUNNING:  # left behind by a killed worker
            study.set_user_attr(STALE_ATTR, sorted(stale_trials(study) | {trial.number}))
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
    cls = get_strategy(strategy)

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("slot", slot)
        try:
            hparams = {**suggest(trial, cls.search_space, "hp."), **fixed_hparams}
            training = suggest(trial, training_space(finetunes(features)), "train.")
            config = TrainConfig(**{**base.__dict__, **training, "seed": tuning_seed(slot, draw), "task": features.task,
                                    "regression_loss": features.regression_loss})
            model = build_model(strategy, features, hparams, config.seed)

            def report(epoch: int, score: float) -> None:
                trial.report(score, epoch + 1)  # step = epochs trained
                if trial.should_prune():
                    raise optuna.TrialPruned()

            stats = train(model, train_split, features.modalities, config, val_split=val_split, on_epoch=report)
            trial.set_user_attr("epochs_run", stats.epochs_run)
            trial.set_user_attr("best_epoch", stats.best_epoch)
            return stats.best_score
        except optuna.TrialPruned:
            raise
        except Exception as exc:  # noqa: BLE001 - the trial's own failure; store outages go to the retry
            if is_store_outage(exc):
                raise
            raise TrialFailed(f"{type(exc).__name__}: {exc}") from exc

    study.optimize(objective, n_trials=1, catch=(TrialFailed,))
    stale = stale_trials(study)
    finished = [t for t in slot_trials(study, slot) if is_final(t, stale)]
    return finished[0] if finished else None


def is_final(trial: optuna.trial.FrozenTrial, stale: set[int] = frozenset()) -> bool:
    """A trial that used up its budget slot: completed, pruned, or failed by itself (NaN loss,
    impossible hyperparameters). Trials of killed workers (numbers in ``stale``, see
    :func:`stale_trials`) do not count."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return trial.state in states or (trial.state == optuna.trial.TrialState.FAIL and trial.number not in stale
                                       and not trial.user_attrs.get("stale"))  # marked by older versions


def budget_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The finished trial of each budget slot (one per slot)."""
    stale = stale_trials(study)
    by_slot: dict[int, optuna.trial.FrozenTrial] = {}
    for trial in study.get_trials(deepcopy=False):
        if "slot" in trial.user_attrs and is_final(trial, stale):
            by_slot.setdefault(trial.user_attrs["slot"], trial)
    return [by_slot[k] for k in sorted(by_slot)]
