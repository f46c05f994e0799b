"""Unimodal baseline: classify from one modality only."""

from __future__ import annotations

import torch
from torch import nn

from strategies.base import FusionStrategy, mlp, zero_absent
from strategies.registration import register_strategy


@register_strategy("unimodal")
class Unimodal(FusionStrategy):
    """An MLP on a single modality (hyperparameter ``modality``, default the first in sorted
    order); every other modality is ignored. Where that modality is absent the model outputs
    learned constant logits (a class prior), independent of every input.

    The unimodal reference every fusion result is compared against; see Baltrusaitis, Ahuja &
    Morency, "Multimodal Machine Learning: A Survey and Taxonomy", IEEE TPAMI 2019.
    """

    family = "unimodal"
    description = "MLP on one chosen modality; learned prior logits where that modality is absent"
    paper = "Baltrusaitis et al. 2019, Multimodal Machine Learning: A Survey and Taxonomy (TPAMI)"
    min_modalities = 1

    @classmethod
    def extra_hparams(cls) -> tuple[str, ...]:
        return ("modality",)

    def __init__(self, input_dims, num_classes, **hparams):
        super().__init__(input_dims, num_classes, **hparams)
        modality = self.hparams.get("modality") or self.modalities[0]
        if modality not in self.input_dims:
            raise ValueError(f"unimodal: modality {modality!r} is not among the inputs {self.modalities}")
        self.hparams["modality"] = modality
        self.modality = modality
        self.index = self.modalities.index(modality)
        self.classifier = mlp(self.input_dims[modality], self.hp("hidden"), num_classes, self.hp("dropout"))
        self.prior = nn.Parameter(torch.zeros(num_classes))  # (C,) logits used when the modality is absent

    def forward(self, inputs, present, token_mask=None):
        here = present[:, self.index]  # (B,)
        logits = self.classifier(zero_absent(inputs[self.modality], here))  # (B, C)
        prior = self.prior.expand_as(logits)  # (B, C)
        return torch.where(here.unsqueeze(-1), logits, prior)  # (B, C)
