"""What a cell run records about its Optuna study, as MLflow tags: the study name, the number of
the trial whose hyperparameters the cell retrained, and the search space, one tag per parameter
"<param>_distribution" holding the Optuna distribution, as optuna-integration's MLflowCallback
logs it (e.g. "train.lr_distribution" = "FloatDistribution(high=0.01, log=True, low=0.0001, step=None)")."""

from __future__ import annotations

import optuna

from benchmark.scale.schema import DISTRIBUTION_SUFFIX, TAG_BEST_TRIAL, TAG_STUDY
from benchmark.train.tuning import TRAINING_SPACE, best_trial, budget_trials
from strategies import get_strategy
from strategies.search_space import Categorical, FloatParam, IntParam, Param

NO_TRIAL = "none"  # TAG_BEST_TRIAL of a cell whose study ran no trials (the defaults were retrained)


def distribution(param: Param) -> optuna.distributions.BaseDistribution:
    """A declared search-space entry as the Optuna distribution ``tuning.suggest`` samples from."""
    if isinstance(param, IntParam):
        return optuna.distributions.IntDistribution(param.low, param.high, log=param.log)
    if isinstance(param, FloatParam):
        return optuna.distributions.FloatDistribution(param.low, param.high, log=param.log)
    if isinstance(param, Categorical):
        return optuna.distributions.CategoricalDistribution(list(param.choices))
    raise TypeError(f"unsupported search-space entry: {param!r}")


def search_space_tags(strategy: str) -> dict[str, str]:
    """"hp.<name>_distribution" for the strategy's space, "train.<name>_distribution" for training's."""
    spaces = (("hp.", get_strategy(strategy).search_space), ("train.", TRAINING_SPACE))
    return {f"{prefix}{name}{DISTRIBUTION_SUFFIX}": str(distribution(param))
            for prefix, space in spaces for name, param in space.items()}


def study_tags(study: optuna.Study, strategy: str, metric: str) -> dict[str, str]:
    """The tags of a cell run tuned by ``study``: its name, the winning trial (the one
    ``cell.run_cells`` retrains: the best completed budget trial in ``metric``'s direction on
    validation) and the search space."""
    completed = [t for t in budget_trials(study) if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
    winner = str(best_trial(completed, metric).number) if completed else NO_TRIAL
    return {TAG_STUDY: study.study_name, TAG_BEST_TRIAL: winner, **search_space_tags(strategy)}
