"""Low-rank Multimodal Fusion: TFN's weight tensor factorised into modality-specific factors."""

from __future__ import annotations

import torch
from torch import nn

from strategies.base import FusionStrategy, mlp, zero_absent
from strategies.registration import register_strategy
from strategies.search_space import FloatParam, IntParam
from strategies.tensor_fusion import augment


@register_strategy("lmf")
class LowRankFusion(FusionStrategy):
    """The fusion h = W . (z_1+ x z_2+ x ... x z_M+) of a Tensor Fusion Network, with z_m+ = [z_m; 1],
    computed without forming the outer product: W = sum_i lambda_i (w_1^(i) x ... x w_M^(i)), so
    h = sum_i lambda_i prod_m (z_m+ . w_m^(i)) + b. An absent modality uses z_m+ = [0, ..., 0, 1],
    so its factor contributes the constant last row of w_m^(i), independent of its values.

    Liu, Shen, Lakshminarasimhan, Liang, Zadeh & Morency, "Efficient Low-rank Multimodal Fusion
    with Modality-Specific Factors", ACL 2018.
    """

    family = "intermediate"
    description = "rank-r factorised tensor fusion: product over modalities of factor projections of [z_m; 1], summed over rank"
    paper = "Liu et al. 2018, Efficient Low-rank Multimodal Fusion with Modality-Specific Factors (ACL)"
    search_space = {
        "embed": IntParam(8, 64, default=16, log=True),
        "rank": IntParam(1, 8, default=4),
        "hidden": IntParam(32, 256, default=64, log=True),
        "dropout": FloatParam(0.0, 0.5, default=0.1),
    }

    def __init__(self, input_dims, num_classes, **hparams):
        super().__init__(input_dims, num_classes, **hparams)
        embed, rank, hidden = self.hp("embed"), self.hp("rank"), self.hp("hidden")
        self.embedders = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(d, embed), nn.ReLU()) for m, d in self.input_dims.items()}
        )
        self.factors = nn.ParameterDict(
            {m: nn.Parameter(nn.init.xavier_normal_(torch.empty(rank, embed + 1, hidden))) for m in self.modalities}
        )  # each (r, d_m + 1, O)
        self.rank_weights = nn.Parameter(nn.init.xavier_normal_(torch.empty(1, rank)).squeeze(0))  # (r,)
        self.bias = nn.Parameter(torch.zeros(hidden))  # (O,)
        self.head = mlp(hidden, hidden, num_classes, self.hp("dropout"))

    def fuse_augmented(self, augmented: list[torch.Tensor]) -> torch.Tensor:
        """[z_m; 1] vectors in sorted modality order, each (B, d_m + 1) -> fused h (B, O)."""
        product = None
        for m, z in zip(self.modalities, augmented):
            term = torch.einsum("bd,rdo->bro", z, self.factors[m])  # (B, r, O)
            product = term if product is None else product * term  # (B, r, O)
        return torch.einsum("bro,r->bo", product, self.rank_weights) + self.bias  # (B, O)

    def full_weight(self) -> torch.Tensor:
        """The full tensor W = sum_i lambda_i w_1^(i) x ... x w_M^(i): (d_1+1, ..., d_M+1, O)."""
        weight = self.factors[self.modalities[0]]  # (r, d_1 + 1, O)
        for m in self.modalities[1:]:
            factor = self.factors[m]  # (r, d_m + 1, O)
            spread = factor.view(factor.shape[0], *([1] * (weight.dim() - 2)), *factor.shape[1:])  # (r, 1.., d_m + 1, O)
            weight = weight.unsqueeze(-2) * spread  # (r, d_1 + 1, ..., d_m + 1, O)
        return torch.einsum("r...,r->...", weight, self.rank_weights)

    def forward(self, inputs, present, token_mask=None):
        augmented = [augment(self.embedders[m](zero_absent(inputs[m], present[:, i])), present[:, i])  # (B, d_m + 1)
                     for i, m in enumerate(self.modalities)]
        return self.head(self.fuse_augmented(augmented))  # (B, C)
