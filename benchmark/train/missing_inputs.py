"""How a fusion model fills an absent modality (the matrix axis ``missing_inputs``).

``"zero"`` (the default): the strategy gets the inputs as they are with a presence mask in which
the absent modality is False; every strategy ignores such values (zero-filling, masked means,
key padding masks). Nothing here runs for it.

``"learned"``: a trainable vector per modality stands in for it, as AutoGluon's multimodal
learned missing-modality embedding does. For each row where modality ``m`` is absent the
strategy receives, in place of ``m``'s features, the vector ``embedding[m]`` (width: the
strategy's input width for ``m``, after any trainable encoder): pooled ``(B, D)`` inputs get the
vector itself; token inputs ``(B, T, D)`` get it as the first token with every other token masked
as padding (token mask False; their values zeroed). The presence mask the strategy sees then has
that modality present: the strategy works on a learned input instead of a masked one. A row's
absent modalities are the ones the caller marks absent, so modality dropout, the test-time
missing rates and modalities absent from the data itself (``split.available``) are all filled the
same way. The absent modality's raw values never reach the strategy.

The vectors start at zero (a fixed rule that draws nothing from the random generator, so the
strategy and encoders of a ``learned`` model start from the same weights as the ``zero`` model of
the same seed) and are trained with the rest of the model. This module is part of the training
protocol: a change that can change a result needs a ``PROTOCOL_VERSION`` bump (benchmark/run/identity.py)."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from benchmark.vocabulary import MISSING_INPUTS, MISSING_LEARNED, MISSING_ZERO


def check_missing_input(value: str) -> str:
    """A missing-input technique name: "zero" or "learned"."""
    if value not in MISSING_INPUTS:
        raise ValueError(f"missing_input: expected one of {list(MISSING_INPUTS)}, got {value!r}")
    return value


class LearnedMissingInputs(nn.Module):
    """One trainable vector per modality, substituted for the modality where it is absent.

    ``forward(inputs, present, token_mask)`` -> (inputs, present with every column True, token_mask)."""

    def __init__(self, input_dims: Mapping[str, int]) -> None:
        super().__init__()
        self.modalities = sorted(input_dims)
        self.embedding = nn.ParameterDict({m: nn.Parameter(torch.zeros(int(input_dims[m])))  # (D_m,) zeros
                                           for m in self.modalities})

    def forward(self, inputs: Mapping[str, torch.Tensor], present: torch.Tensor,
                token_mask: Mapping[str, torch.Tensor] | None):
        inputs = dict(inputs)
        masks = dict(token_mask) if token_mask is not None else None
        for i, m in enumerate(self.modalities):
            x = inputs[m]
            absent = ~present[:, i]  # (B,)
            vector = self.embedding[m].to(x.dtype)  # (D,)
            if x.dim() == 2:  # pooled (B, D)
                inputs[m] = torch.where(absent.unsqueeze(1), vector.expand_as(x), x)  # (B, D)
                continue
            # tokens (B, T, D): the vector as token 0, the rest zeroed and masked as padding
            batch, length, _ = x.shape
            first = torch.arange(length, device=x.device) == 0  # (T,)
            filler = torch.where(first.view(1, length, 1), vector.view(1, 1, -1),
                                 torch.zeros((), dtype=x.dtype, device=x.device)).expand_as(x)  # (B, T, D)
            inputs[m] = torch.where(absent.view(-1, 1, 1), filler, x)  # (B, T, D)
            if masks is None:
                masks = {}
            valid = masks.get(m)
            if valid is None:
                valid = torch.ones(batch, length, dtype=torch.bool, device=x.device)  # (B, T) all real
            masks[m] = torch.where(absent.unsqueeze(1), first.unsqueeze(0).expand(batch, length), valid)  # (B, T)
        return inputs, torch.ones_like(present), masks  # present: (B, M) all True


def missing_input_module(technique: str, input_dims: Mapping[str, int]) -> LearnedMissingInputs | None:
    """The module a technique needs in front of the strategy: None for "zero" (nothing changes)."""
    check_missing_input(technique)
    return LearnedMissingInputs(input_dims) if technique == MISSING_LEARNED else None


__all__ = ["LearnedMissingInputs", "MISSING_LEARNED", "MISSING_ZERO", "check_missing_input", "missing_input_module"]
