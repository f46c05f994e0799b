"""Gated Multimodal Unit, generalised from two to M modalities."""

from __future__ import annotations

import torch
from torch import nn

from strategies.base import FusionStrategy, masked_softmax, mlp, zero_absent
from strategies.registration import register_strategy


@register_strategy("gmu")
class GatedMultimodalUnit(FusionStrategy):
    """Each modality gives a candidate h_m = tanh(W_m x_m); a gate computed from all (present)
    inputs gives per-feature weights, a softmax over the present modalities, and the fused
    representation is sum_m z_m * h_m. With two modalities this is the original sigmoid gate
    z, 1 - z.

    Arevalo, Solorio, Montes-y-Gomez & Gonzalez, "Gated Multimodal Units for Information
    Fusion", ICLR Workshop 2017.
    """

    family = "intermediate"
    description = "tanh candidates per modality mixed by a per-feature softmax gate over present modalities"
    paper = "Arevalo et al. 2017, Gated Multimodal Units for Information Fusion (ICLR Workshop)"

    def __init__(self, input_dims, num_classes, **hparams):
        super().__init__(input_dims, num_classes, **hparams)
        hidden, n = self.hp("hidden"), len(self.modalities)
        self.candidates = nn.ModuleDict({m: nn.Linear(d, hidden) for m, d in self.input_dims.items()})
        self.gate = nn.Linear(sum(self.input_dims.values()) + n, n * hidden)
        self.head = mlp(hidden, hidden, num_classes, self.hp("dropout"))

    def gate_weights(self, inputs, present) -> torch.Tensor:
        """-> (B, M, H) gate values; over the modality axis they sum to 1 on the present ones."""
        clean = [zero_absent(inputs[m], present[:, i]) for i, m in enumerate(self.modalities)]  # (B, D_m) each
        scores = self.gate(torch.cat(clean + [present.to(clean[0].dtype)], dim=-1))  # (B, M*H)
        scores = scores.view(scores.shape[0], len(self.modalities), -1)  # (B, M, H)
        return masked_softmax(scores, present.unsqueeze(-1).expand_as(scores), dim=1)  # (B, M, H)

    def forward(self, inputs, present, token_mask=None):
        h = torch.stack(
            [zero_absent(torch.tanh(self.candidates[m](zero_absent(inputs[m], present[:, i]))), present[:, i])
             for i, m in enumerate(self.modalities)], dim=1)  # (B, M, H)
        fused = (self.gate_weights(inputs, present) * h).sum(dim=1)  # (B, H)
        return self.head(fused)  # (B, C)
