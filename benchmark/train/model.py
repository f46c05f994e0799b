"""A fusion model as a composition, after TorchMultimodal's ``LateFusion(encoders, fusion,
head)``: trainable encoders (one per modality that has one) in front of a fusion strategy.

The strategy's metadata (``family``, ``consumes_tokens``) travels with the model, so the
loop, evaluation and cost code never need to know whether an encoder is trainable."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from benchmark.features.tensors import FeatureSet
from benchmark.train.trainable_encoders import build_front_end, output_width
from strategies import FusionStrategy, get_strategy


class FusionModel(nn.Module):
    """``encoders -> strategy``. ``forward(inputs, present, token_mask)`` keeps the strategy
    contract: each modality with a trainable encoder is passed through it first; the others
    reach the strategy as they are."""

    def __init__(self, strategy: FusionStrategy, encoders: Mapping[str, nn.Module] | None = None) -> None:
        super().__init__()
        self.strategy = strategy
        self.encoders = nn.ModuleDict(dict(encoders or {}))

    @property
    def family(self) -> str:
        return self.strategy.family

    @property
    def consumes_tokens(self) -> bool:
        return self.strategy.consumes_tokens

    def _encode(self, inputs: Mapping[str, torch.Tensor], token_mask: Mapping[str, torch.Tensor] | None):
        """Pass each modality that has a trainable encoder through it. -> (inputs, token_mask)"""
        if not len(self.encoders):
            return inputs, token_mask
        inputs = dict(inputs)
        token_mask = dict(token_mask) if token_mask is not None else None
        for m, encoder in self.encoders.items():
            inputs[m], mask = encoder(inputs[m], tokens=self.consumes_tokens)  # (B, D) or (B, T, D)
            if token_mask is not None and mask is not None:
                token_mask[m] = mask  # (B, T)
        return inputs, token_mask

    def forward(self, inputs: Mapping[str, torch.Tensor], present: torch.Tensor,
                token_mask: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        inputs, token_mask = self._encode(inputs, token_mask)
        return self.strategy(inputs, present, token_mask)  # (B, C)

    def forward_with_aux(self, inputs: Mapping[str, torch.Tensor], present: torch.Tensor,
                         token_mask: Mapping[str, torch.Tensor] | None = None):
        """Logits (B, C) and the strategy's auxiliary classifier outputs (training only)."""
        inputs, token_mask = self._encode(inputs, token_mask)
        return self.strategy.forward_with_aux(inputs, present, token_mask)


def build_model(strategy: str, features: FeatureSet, hparams: dict[str, Any], seed: int) -> FusionModel:
    """The strategy on the feature widths, with a trainable encoder in front of each modality
    whose features are that encoder's raw input (e.g. ``small_cnn``). Seeded: the strategy's
    weights are drawn first, then the encoders', in sorted modality order."""
    torch.manual_seed(seed)
    cls = get_strategy(strategy)
    widths = {m: output_width(f) for m, f in features.front_ends.items()}
    dims = {m: widths.get(m, d) for m, d in features.input_dims(tokens=cls.consumes_tokens).items()}
    strategy_module = cls(dims, features.output_dim, **hparams)  # output width of the task (FeatureSet.output_dim)
    encoders = {m: build_front_end(features.front_ends[m]) for m in sorted(features.front_ends)}
    return FusionModel(strategy_module, encoders)
