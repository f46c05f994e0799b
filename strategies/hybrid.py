"""Hybrid fusion: feature-level and decision-level fusion combined in one model."""

from __future__ import annotations

import torch
from torch import nn

from strategies.base import FusionStrategy, masked_softmax, mlp, zero_absent
from strategies.registration import register_strategy


@register_strategy("hybrid")
class HybridFusion(FusionStrategy):
    """A fused-feature classifier (concatenated projections, absent ones zeroed, plus presence
    flags) and one classifier per modality; their logits are mixed with learnable weights that
    are softmax-normalised over the fused branch and the present modalities.

    Hybrid (feature + decision level) fusion as surveyed by Atrey, Hossain, El Saddik &
    Kankanhalli, "Multimodal fusion for multimedia analysis: a survey", Multimedia Systems 2010.
    """

    family = "hybrid"
    description = "fused-feature classifier + per-modality classifiers, logits mixed by weights over present branches"
    paper = "Atrey et al. 2010, Multimodal fusion for multimedia analysis: a survey (Multimedia Systems)"

    def __init__(self, input_dims, num_classes, **hparams):
        super().__init__(input_dims, num_classes, **hparams)
        hidden, dropout, n = self.hp("hidden"), self.hp("dropout"), len(self.modalities)
        self.projections = nn.ModuleDict({m: nn.Linear(d, hidden) for m, d in self.input_dims.items()})
        self.fused_classifier = mlp(n * hidden + n, hidden, num_classes, dropout)
        self.classifiers = nn.ModuleDict({m: nn.Linear(hidden, num_classes) for m in self.modalities})
        self.branch_logits = nn.Parameter(torch.zeros(n + 1))  # [fused, modality_1, ..., modality_M]

    def branch_weights(self, present: torch.Tensor) -> torch.Tensor:
        """bool (B, M) -> (B, 1 + M) weights over [fused, present modalities], summing to 1."""
        available = torch.cat([torch.ones_like(present[:, :1]), present], dim=1)  # (B, 1 + M)
        return masked_softmax(self.branch_logits.expand(present.shape[0], -1), available, dim=-1)

    def forward(self, inputs, present, token_mask=None):
        embedded = [
            zero_absent(torch.relu(self.projections[m](zero_absent(inputs[m], present[:, i]))), present[:, i])
            for i, m in enumerate(self.modalities)
        ]  # (B, H) each
        fused = self.fused_classifier(torch.cat(embedded + [present.to(embedded[0].dtype)], dim=-1))  # (B, C)
        unimodal = [zero_absent(self.classifiers[m](e), present[:, i])  # (B, C)
                    for i, (m, e) in enumerate(zip(self.modalities, embedded))]
        logits = torch.stack([fused] + unimodal, dim=1)  # (B, 1 + M, C)
        weights = self.branch_weights(present).unsqueeze(-1)  # (B, 1 + M, 1)
        return (weights * logits).sum(dim=1)  # (B, C)
