"""Imbalanced missingness at test time: for each modality, a curve where only that modality goes
missing (each row loses it with probability r, r over the missing rates) while the others stay
present, as deployments lose one sensor far more often than another (MissBench, 2026).

The masks are ANDed with the modalities the data holds (``split.available``), like the curve
where every modality goes missing; a row whose only available modality is the one removed keeps
it (every row keeps at least one modality). Rate 0 removes nothing: its scores are the full-input
scores, reused rather than recomputed."""

from __future__ import annotations

from typing import Callable

import torch

from benchmark.train.batching import random_presence

Scores = dict[str, float]  # metric -> test score


def modality_missing_scores(n: int, modalities: list[str], rates: tuple[float, ...], full: Scores,
                            scores_of: Callable[[torch.Tensor], Scores], available: torch.Tensor, seed: int,
                            device: torch.device | str = "cpu") -> dict[str, dict[float, Scores]]:
    """modality -> rate -> metric -> score. ``scores_of`` scores a presence mask (bool (N, M)) on the
    test split; ``full`` are the full-input scores (rate 0). Each modality's curve draws from its own
    generator seeded with ``seed``, so a curve does not depend on which modalities come before it."""
    out: dict[str, dict[float, Scores]] = {}
    if len(modalities) < 2:
        return out  # one modality: removing it leaves nothing (the row keeps it), no curve to speak of
    for column, modality in enumerate(modalities):
        generator = torch.Generator().manual_seed(seed)
        curve: dict[float, Scores] = {}
        for rate in rates:
            if rate == 0:
                curve[rate] = dict(full)
                continue
            per_modality = torch.zeros(len(modalities))  # (M,): only this modality is dropped
            per_modality[column] = rate
            mask = random_presence(n, len(modalities), per_modality, generator, device, available)  # (N, M)
            curve[rate] = scores_of(mask)
        out[modality] = curve
    return out
