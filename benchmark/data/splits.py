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
