"""What a cell run records about its Optuna study, as MLflow tags: the study name, the number of
the trial whose hyperparameters the cell retrained, and the search space, one tag per parameter
"<param>_distribution" holding the Optuna distribution, as optuna-integration's MLflowCallback
logs it (e.g. "train.lr_distribution" = "FloatDistribution(high=0.01, log=True, low=0.0001, step=None)")."""

from __future__ import annotations

import optuna

from benchmark.vocabulary import DISTRIBUTION_SUFFIX, TAG_BEST_TRIAL, TAG_STUDY
from benchmark.train.tuning import distribution, training_space, winning_trial
from strategies import get_strategy

NO_TRIAL = "none"  # TAG_BEST_TRIAL of a cell whose study ran no trials (the defaults were retrained)


def search_space_tags(strategy: str, finetuned: bool = False) -> dict[str, str]:
    """"hp.<name>_distribution" for the strategy's space, "train.<name>_distribution" for training's
    (with the encoder learning rate where the model fine-tunes an encoder)."""
    spaces = (("hp.", get_strategy(strategy).search_space), ("train.", training_space(finetuned)))
    return {f"{prefix}{name}{DISTRIBUTION_SUFFIX}": str(distribution(param))
            for prefix, space in spaces for name, param in space.items()}


def study_tags(study: optuna.Study, strategy: str, metric: str, finetuned: bool = False) -> dict[str, str]:
    """The tags of a cell run tuned by ``study``: its name, the winning trial (the one
    ``cell.run_cells`` retrains: ``tuning.winning_trial``) and the search space."""
    winner = winning_trial(study, metric)
    return {TAG_STUDY: study.study_name, TAG_BEST_TRIAL: NO_TRIAL if winner is None else str(winner.number),
            **search_space_tags(strategy, finetuned)}
