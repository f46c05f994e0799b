"""Multimodal Factorized Bilinear pooling (MFB)."""

from __future__ import annotations

import torch
from torch import nn

from strategies.base import FusionStrategy, mlp, zero_absent
from strategies.registration import register_strategy
from strategies.search_space import FloatParam, IntParam


@register_strategy("mfb")
class FactorizedBilinear(FusionStrategy):
    """Each modality is projected to k*o features; the projections are multiplied elementwise in
    a chain over the present modalities (an absent one contributes the identity 1), sum-pooled
    over non-overlapping windows of k, then power-normalised (signed sqrt) and L2-normalised.
    With two modalities this is exactly MFB's low-rank bilinear pooling.

    Yu, Yu, Fan & Tao, "Multi-modal Factorized Bilinear Pooling with Co-Attention Learning for
    Visual Question Answering", ICCV 2017.
    """

    family = "intermediate"
    description = "factorised bilinear pooling: chained Hadamard product of k*o projections (absent -> 1), sum-pool k, normalise"
    paper = "Yu et al. 2017, Multi-modal Factorized Bilinear Pooling with Co-Attention Learning for VQA (ICCV)"
    search_space = {
        "factor": IntParam(2, 8, default=4),
        "out": IntParam(16, 128, default=64, log=True),
        "hidden": IntParam(32, 256, default=64, log=True),
        "dropout": FloatParam(0.0, 0.5, default=0.1),
    }

    def __init__(self, input_dims, num_classes, **hparams):
        super().__init__(input_dims, num_classes, **hparams)
        k, o = self.hp("factor"), self.hp("out")
        self.projections = nn.ModuleDict({m: nn.Linear(d, k * o) for m, d in self.input_dims.items()})
        self.drop = nn.Dropout(self.hp("dropout"))
        self.head = mlp(o, self.hp("hidden"), num_classes, self.hp("dropout"))

    def pool(self, inputs, present) -> torch.Tensor:
        joint = None
        for i, m in enumerate(self.modalities):
            proj = self.projections[m](zero_absent(inputs[m], present[:, i]))  # (B, k*o)
            proj = torch.where(present[:, i : i + 1], proj, torch.ones_like(proj))  # identity where absent
            joint = proj if joint is None else joint * proj  # (B, k*o)
        joint = self.drop(joint)
        pooled = joint.view(joint.shape[0], self.hp("out"), self.hp("factor")).sum(dim=-1)  # (B, o)
        pooled = torch.sign(pooled) * torch.sqrt(pooled.abs() + 1e-8)  # power normalisation
        return nn.functional.normalize(pooled, dim=-1)  # (B, o)

    def forward(self, inputs, present, token_mask=None):
        return self.head(self.pool(inputs, present))  # (B, C)
