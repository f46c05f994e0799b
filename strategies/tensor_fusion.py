"""Tensor Fusion Network: outer product of the [z_m; 1] modality embeddings."""

from __future__ import annotations

import math

import torch
from torch import nn

from strategies.base import FusionStrategy, mlp, zero_absent
from strategies.registration import register_strategy
from strategies.search_space import FloatParam, IntParam


def augment(z: torch.Tensor, present_col: torch.Tensor) -> torch.Tensor:
    """[z; 1] for present rows and [0, ..., 0; 1] for absent rows. z: (B, d) -> (B, d + 1).

    The constant-1 coordinate makes an absent modality the identity of the outer product."""
    ones = torch.ones_like(z[:, :1])  # (B, 1)
    return torch.cat([zero_absent(z, present_col), ones], dim=-1)  # (B, d + 1)


def outer_product(vectors: list[torch.Tensor]) -> torch.Tensor:
    """Flattened outer product of per-row vectors [(B, a), (B, b), ...] -> (B, a * b * ...)."""
    fused = vectors[0]  # (B, a)
    for v in vectors[1:]:
        fused = (fused.unsqueeze(-1) * v.unsqueeze(1)).flatten(1)  # (B, prod so far * len(v))
    return fused


@register_strategy("tfn")
class TensorFusion(FusionStrategy):
    """Each modality is embedded to a small width d, extended with a constant 1, and the
    modalities are fused by their outer product (width prod(d_m + 1)), which holds every
    unimodal, bimodal and trimodal interaction; an MLP classifies it. An absent modality's
    vector is [0, ..., 0, 1], so the product reduces to the interactions of the present ones.

    Zadeh, Chen, Poria, Cambria & Morency, "Tensor Fusion Network for Multimodal Sentiment
    Analysis", EMNLP 2017.
    """

    family = "intermediate"
    description = "outer product of [z_m; 1] embeddings (absent -> [0..0, 1]), then an MLP"
    paper = "Zadeh et al. 2017, Tensor Fusion Network for Multimodal Sentiment Analysis (EMNLP)"
    max_modalities = 3  # the fused width grows as (d + 1)^M
    search_space = {
        "embed": IntParam(4, 16, default=8),
        "hidden": IntParam(32, 256, default=64, log=True),
        "dropout": FloatParam(0.0, 0.5, default=0.1),
    }

    def __init__(self, input_dims, num_classes, **hparams):
        super().__init__(input_dims, num_classes, **hparams)
        self.embed_dims = {m: self.hp("embed") for m in self.modalities}
        self.embedders = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(d, self.embed_dims[m]), nn.ReLU()) for m, d in self.input_dims.items()}
        )
        self.head = mlp(self.fused_width, self.hp("hidden"), num_classes, self.hp("dropout"))

    @property
    def fused_width(self) -> int:
        """Width of the flattened fusion tensor: prod over modalities of (d_m + 1)."""
        return math.prod(d + 1 for d in self.embed_dims.values())

    def fuse(self, inputs, present) -> torch.Tensor:
        vectors = [augment(self.embedders[m](zero_absent(inputs[m], present[:, i])), present[:, i])  # (B, d_m + 1)
                   for i, m in enumerate(self.modalities)]
        return outer_product(vectors)  # (B, fused_width)

    def forward(self, inputs, present, token_mask=None):
        return self.head(self.fuse(inputs, present))  # (B, C)
