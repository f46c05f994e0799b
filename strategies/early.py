"""Early fusion: concatenate the modality features and classify with one MLP."""

from __future__ import annotations

import torch

from strategies.base import FusionStrategy, mlp, zero_absent
from strategies.registration import register_strategy


@register_strategy("concat")
class EarlyConcat(FusionStrategy):
    """Concatenation of (zeroed-when-absent) modality features plus the presence mask, fed to an MLP.

    The classic early-fusion baseline; see Baltrusaitis, Ahuja & Morency, "Multimodal Machine
    Learning: A Survey and Taxonomy", IEEE TPAMI 2019 (section on model-agnostic early fusion).
    """

    family = "early"
    description = "concatenate features (absent ones zeroed) + presence flags, then an MLP"
    paper = "Baltrusaitis et al. 2019, Multimodal Machine Learning: A Survey and Taxonomy (TPAMI)"

    def __init__(self, input_dims, num_classes, **hparams):
        super().__init__(input_dims, num_classes, **hparams)
        width = sum(self.input_dims.values()) + len(self.modalities)
        self.head = mlp(width, self.hp("hidden"), num_classes, self.hp("dropout"))

    def forward(self, inputs, present, token_mask=None):
        parts = [zero_absent(inputs[m], present[:, i]) for i, m in enumerate(self.modalities)]  # (B, D_m) each
        fused = torch.cat(parts + [present.to(parts[0].dtype)], dim=-1)  # (B, sum D_m + M)
        return self.head(fused)  # (B, C)
