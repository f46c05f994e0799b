"""Deterministic, stratified split and sample indices (used by card loading and the built-in
preparers alike)."""

from __future__ import annotations

import numpy as np


def stratified_split(labels: np.ndarray, seed: int, validation: float, test: float) -> dict[str, np.ndarray]:
    """Deterministic stratified train/validation/test indices."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n_test = max(1, round(len(idx) * test))
        n_val = max(1, round(len(idx) * validation))
        parts["test"] += idx[:n_test].tolist()
        parts["validation"] += idx[n_test : n_test + n_val].tolist()
        parts["train"] += idx[n_test + n_val :].tolist()
    return {k: np.sort(np.array(v, dtype=np.int64)) for k, v in parts.items()}


def stratified_sample(labels: np.ndarray, rows: int, seed: int) -> np.ndarray:
    """Sorted indices of about ``rows`` rows keeping each class's share (deterministic)."""
    rng = np.random.default_rng(seed)
    keep = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        keep += rng.choice(idx, size=max(1, round(rows * len(idx) / len(labels))), replace=False).tolist()
    return np.sort(np.array(keep, dtype=np.int64))


def fold_assignment(labels: np.ndarray | None, n: int, k: int, seed: int) -> np.ndarray:
    """Fold id (0..k-1) of each of ``n`` rows for k-fold cross-validation, deterministic in ``seed``.

    With class ``labels`` (N,) the folds are stratified: each class's rows are shuffled and dealt
    to the folds in turn, continuing where the previous class stopped, so every class's count per
    fold and every fold's size differ by at most one row. Without labels (multilabel, regression)
    the rows are shuffled and dealt the same way."""
    rng = np.random.default_rng(seed)
    if labels is None:
        order = rng.permutation(n)
    else:
        order = np.concatenate([rng.permutation(np.flatnonzero(labels == cls)) for cls in np.unique(labels)])
    folds = np.empty(n, dtype=np.int64)
    folds[order] = np.arange(n) % k
    return folds


def fold_indices(labels: np.ndarray | None, n: int, k: int, fold: int, seed: int,
                 validation: float) -> dict[str, np.ndarray]:
    """Sorted train/validation/test indices of ``fold`` of a k-fold split of ``n`` pooled rows.

    Test is fold ``fold`` itself; validation is carved from the other folds' rows (never from the
    test fold), stratified by ``labels`` where given, ``validation`` of all ``n`` rows (so it is as
    large as in a fixed split with that validation share); training is what remains. The folds are
    the same for every ``fold`` asked (:func:`fold_assignment` with ``seed``); the validation carve
    is seeded by (``seed``, ``fold``)."""
    if not 2 <= k <= n:
        raise ValueError(f"expected between 2 and {n} folds (the number of rows), got {k}")
    if not 0 <= fold < k:
        raise ValueError(f"expected a fold in 0..{k - 1}, got {fold}")
    share = validation * k / (k - 1)  # of the training rows
    if not 0 < share < 1:
        raise ValueError(f"a validation share of {validation:g} of all rows leaves no training rows with {k} folds "
                         f"(it must be below {(k - 1) / k:.3g}: the test fold takes 1/{k})")
    folds = fold_assignment(labels, n, k, seed)
    test = np.flatnonzero(folds == fold)
    rest = np.flatnonzero(folds != fold)
    rng = np.random.default_rng([seed, fold])
    groups = [rest] if labels is None else [rest[labels[rest] == cls] for cls in np.unique(labels[rest])]
    val: list[int] = []
    for idx in groups:
        idx = rng.permutation(idx)
        take = min(len(idx) - 1, max(1, round(len(idx) * share))) if len(idx) > 1 else 0
        val += idx[:take].tolist()
    val_idx = np.sort(np.array(val, dtype=np.int64))
    return {"train": np.setdiff1d(rest, val_idx), "validation": val_idx, "test": test}


def grouped_stratified_split(labels: np.ndarray, groups: list[str] | np.ndarray, seed: int, validation: float,
                             test: float) -> dict[str, np.ndarray]:
    """Deterministic stratified train/validation/test indices that keep every group whole.

    Rows sharing a group id (e.g. colour variants of one picture) land in the same split. The
    groups are split with :func:`stratified_split`, each stratified by its first row's label
    (groups are expected to hold one label), in the order of their first rows."""
    groups = np.asarray(groups)
    names, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    order = np.argsort(first)  # groups in order of first appearance (independent of the names' sort)
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    group_of_row = rank[inverse]  # (N,) group index in appearance order
    parts = stratified_split(np.asarray(labels)[first[order]], seed=seed, validation=validation, test=test)
    return {k: np.flatnonzero(np.isin(group_of_row, v)) for k, v in parts.items()}
