"""Turning a split into model inputs: choose pooled or token features, apply modality
dropout (training only) and build presence masks."""

from __future__ import annotations

import torch

from benchmark.features.tensors import SplitTensors


def model_inputs(split: SplitTensors, modalities: list[str], index: torch.Tensor, tokens: bool):
    """-> (inputs: m -> (b, D) or (b, T, D), token_mask: m -> (b, T) or None)."""
    if tokens:
        return ({m: split.tokens[m][index] for m in modalities}, {m: split.token_mask[m][index] for m in modalities})
    return {m: split.pooled[m][index] for m in modalities}, None


def random_presence(batch: int, num_modalities: int, missing_rate: float, generator: torch.Generator,
                    device: torch.device | str = "cpu") -> torch.Tensor:
    """Drop each modality of each row with probability ``missing_rate``, keeping at least one.

    Rows that lost everything get one modality back, chosen uniformly. -> bool (B, M)
    """
    present = torch.rand(batch, num_modalities, generator=generator) >= missing_rate  # (B, M)
    empty = ~present.any(dim=1)  # (B,)
    if empty.any():
        keep = torch.randint(num_modalities, (int(empty.sum()),), generator=generator)
        present[empty.nonzero(as_tuple=True)[0], keep] = True
    return present.to(device)


def subset_presence(batch: int, modalities: list[str], subset: tuple[str, ...], device) -> torch.Tensor:
    """Presence mask with exactly ``subset`` available in every row. -> bool (B, M)"""
    row = torch.tensor([m in subset for m in modalities], dtype=torch.bool, device=device)
    return row.unsqueeze(0).expand(batch, -1).contiguous()
