"""k-fold cross-validation in a matrix: which datasets use it and with how many folds, the
cells of each fold, and the splits a fold's cells train, validate and test on.

A dataset uses k-fold when the profile's `folds` (or `--folds`) is set, which applies to every
dataset of the matrix and overrides the card's, or else when its card sets `folds`. The folds
are seeded by the card's split seed (`split: {seed: ...}`, default 0), never by a run's seed, so
every strategy and seed sees the same folds; validation keeps the card's validation share of all
rows (`split: {validation: ...}`, default 0.15), carved from the training folds."""

from __future__ import annotations

from dataclasses import replace

from benchmark.data.cards import CardError, DatasetCard
from benchmark.features.tensors import FeatureSet, SplitTensors, fold_splits, place_splits
from benchmark.run.config import MatrixConfig, ProfileError
from benchmark.run.finetune_axis import feature_key
from benchmark.run.identity import digest
from benchmark.train.results import Cell
from benchmark.vocabulary import finetune_of

DEFAULT_VALIDATION = 0.15  # as benchmark/data/loading.py divides a single split


def fold_count(config: MatrixConfig, card: DatasetCard) -> int | None:
    """The number of folds of the dataset in this matrix (None: the card's fixed split)."""
    return config.folds if config.folds is not None else card.folds


def fold_seed(card: DatasetCard) -> int:
    """The seed that fixes the dataset's folds (the card's split seed, the same for every run)."""
    return int(card.split.get("seed", 0))


def with_folds(config: MatrixConfig, cards: dict[str, DatasetCard], cells: list[Cell]) -> list[Cell]:
    """Each cell of a dataset with k folds replaced by k cells, one per test fold (so a
    configuration's replicates are its folds x seeds); other cells as they are. ``cards``: dataset
    -> card."""
    for card in {c.dataset: cards[c.dataset] for c in cells}.values():
        check_validation_share(config, card)
    out: list[Cell] = []
    for cell in cells:
        k = fold_count(config, cards[cell.dataset])
        out += [cell] if k is None else [replace(cell, fold=fold) for fold in range(k)]
    return out


def check_validation_share(config: MatrixConfig, card: DatasetCard) -> None:
    """Refuse a number of folds that leaves no training rows beside the card's validation share."""
    k = fold_count(config, card)
    validation = float(card.split.get("validation", DEFAULT_VALIDATION))
    if k is None or validation * k / (k - 1) < 1:
        return
    problem = (f"{k} folds leave no training rows: the test fold takes 1/{k} of the rows and validation "
               f"{validation:g} ({card.path}, field 'split.validation'); expected fewer folds or a smaller share")
    if config.folds is not None:
        raise ProfileError(f"profile {config.name!r}: field 'folds': {problem}")
    raise CardError(card.path, "folds", problem)


def folded_fingerprint(fingerprint: str, k: int | None) -> str:
    """A dataset's inputs fingerprint with its number of folds (fold 0 of 5 is not fold 0 of 2);
    unchanged without folds."""
    return fingerprint if k is None else digest({"inputs": fingerprint, "folds": k})


class FoldSplits:
    """The splits each cell trains on: the dataset's own (placed on the device) for a cell without
    a fold, else its fold's (``fold_splits``), built once per (dataset and fine-tuning mode, fold, device)."""

    def __init__(self, config: MatrixConfig, cards: dict[str, DatasetCard]) -> None:
        self.config, self.cards = config, cards
        self._made: dict[tuple[str, int, str], dict[str, SplitTensors]] = {}

    def of(self, cell: Cell, features: FeatureSet, device: str) -> dict[str, SplitTensors]:
        if cell.fold is None:
            return features.splits_on(device)
        key = (feature_key(cell.dataset, finetune_of(cell.fixed_hparams)), cell.fold, str(device))
        if key not in self._made:
            card = self.cards[cell.dataset]
            k = fold_count(self.config, card)
            validation = float(card.split.get("validation", DEFAULT_VALIDATION))
            try:
                splits = fold_splits(features, k, cell.fold, fold_seed(card), validation)
            except ValueError as exc:
                raise ValueError(f"dataset {cell.dataset!r} ({card.path}), {k}-fold cross-validation: {exc}") from None
            self._made[key] = place_splits(splits, device)
        return self._made[key]
