"""Imbalanced missingness at test time: for each modality, a curve where only that modality goes
missing (each row loses it with probability r, r over the missing rates) while the others stay
present, as deployments lose one sensor far more often than another (MissBench, 2026).

The masks are ANDed with the modalities the data holds (``split.available``), like the curve
where every modality goes missing; a row whose only available modality is the one removed keeps
it (every row keeps at least one modality). Rate 0 removes nothing: its scores are the full-input
scores, reused rather than recomputed."""

from __future__ import annotations

import torch

from benchmark.train.batching import random_presence


def modality_missing_masks(n: int, modalities: list[str], rates: tuple[float, ...], available: torch.Tensor, seed: int,
                           device: torch.device | str = "cpu") -> dict[str, dict[float, torch.Tensor | None]]:
    """modality -> rate -> presence mask (bool (N, M)) where only that modality goes missing; None
    at rate 0 (nothing removed: the full-input scores stand for it). Each modality's curve draws
    from its own generator seeded with ``seed``, so a curve does not depend on which modalities come
    before it. {} with one modality: removing it leaves nothing (the row keeps it), no curve."""
    out: dict[str, dict[float, torch.Tensor | None]] = {}
    if len(modalities) < 2:
        return out
    for column, modality in enumerate(modalities):
        generator = torch.Generator().manual_seed(seed)
        curve: dict[float, torch.Tensor | None] = {}
        for rate in rates:
            if rate == 0:
                curve[rate] = None
                continue
            per_modality = torch.zeros(len(modalities))  # (M,): only this modality is dropped
            per_modality[column] = rate
            curve[rate] = random_presence(n, len(modalities), per_modality, generator, device, available)  # (N, M)
        out[modality] = curve
    return out
