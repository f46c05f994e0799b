"""Late (decision-level) fusion: one classifier per modality, combine their outputs."""

from __future__ import annotations

import torch
from torch import nn

from strategies.base import FusionStrategy, masked_softmax, mlp, zero_absent
from strategies.registration import register_strategy


@register_strategy("late_weighted")
class LateWeighted(FusionStrategy):
    """Per-modality classifiers whose logits are averaged with learnable weights, softmax-
    normalised over the modalities present in each row.

    Weighted decision-level fusion; see Snoek, Worring & Smeulders, "Early versus Late Fusion
    in Semantic Video Analysis", ACM Multimedia 2005.
    """

    family = "late"
    description = "per-modality classifiers, logits mixed by learnable weights renormalised over present ones"
    paper = "Snoek et al. 2005, Early versus Late Fusion in Semantic Video Analysis (ACM MM)"

    def __init__(self, input_dims, num_classes, **hparams):
        super().__init__(input_dims, num_classes, **hparams)
        self.classifiers = nn.ModuleDict(
            {m: mlp(d, self.hp("hidden"), num_classes, self.hp("dropout")) for m, d in self.input_dims.items()}
        )
        self.weight_logits = nn.Parameter(torch.zeros(len(self.modalities)))

    def modality_weights(self, present: torch.Tensor) -> torch.Tensor:
        """bool (B, M) -> (B, M) weights summing to 1 over the present modalities."""
        scores = self.weight_logits.expand(present.shape[0], -1)
        return masked_softmax(scores, present, dim=-1)

    def forward(self, inputs, present, token_mask=None):
        logits = torch.stack([self.classifiers[m](zero_absent(inputs[m], present[:, i]))
                              for i, m in enumerate(self.modalities)], dim=1)  # (B, M, C)
        weights = self.modality_weights(present).unsqueeze(-1)  # (B, M, 1)
        logits = torch.where(weights > 0, logits, torch.zeros_like(logits))
        return (weights * logits).sum(dim=1)  # (B, C)


class _PerModalityClassifiers(FusionStrategy):
    """Shared machinery: one MLP classifier per modality on its (zeroed-when-absent) features."""

    family = "late"

    def __init__(self, input_dims, num_classes, **hparams):
        super().__init__(input_dims, num_classes, **hparams)
        self.classifiers = nn.ModuleDict(
            {m: mlp(d, self.hp("hidden"), num_classes, self.hp("dropout")) for m, d in self.input_dims.items()}
        )

    def modality_logits(self, inputs, present) -> torch.Tensor:
        """-> (B, M, C) per-modality logits; rows of absent modalities are exactly zero."""
        logits = [
            zero_absent(self.classifiers[m](zero_absent(inputs[m], present[:, i])), present[:, i])  # (B, C)
            for i, m in enumerate(self.modalities)
        ]
        return torch.stack(logits, dim=1)  # (B, M, C)


@register_strategy("prob_average")
class ProbabilityAverage(_PerModalityClassifiers):
    """Per-modality classifiers whose softmax probabilities are averaged over the present
    modalities; the logits returned are the log of the averaged probabilities.

    The sum (mean) rule of Kittler, Hatef, Duin & Matas, "On Combining Classifiers", IEEE TPAMI 1998.
    """

    description = "per-modality classifiers; mean of softmax probabilities over present modalities, returned as log-probs"
    paper = "Kittler et al. 1998, On Combining Classifiers (IEEE TPAMI), sum rule"

    def forward(self, inputs, present, token_mask=None):
        log_probs = torch.log_softmax(self.modality_logits(inputs, present), dim=-1)  # (B, M, C)
        keep = present.unsqueeze(-1)  # (B, M, 1)
        log_probs = torch.where(keep, log_probs, torch.full_like(log_probs, float("-inf")))  # (B, M, C)
        count = present.to(log_probs.dtype).sum(dim=1, keepdim=True)  # (B, 1)
        # log(mean_m p_m) computed stably as logsumexp_m(log p_m) - log(count).
        return torch.logsumexp(log_probs, dim=1) - count.log()  # (B, C)


@register_strategy("stacking")
class Stacking(_PerModalityClassifiers):
    """Per-modality classifiers plus a meta-classifier over their logits (absent ones zeroed)
    and the presence flags, all trained jointly end to end.

    Stacked generalisation of Wolpert, "Stacked Generalization", Neural Networks 1992 (here the
    level-1 learner is trained jointly rather than on held-out level-0 predictions).
    """

    description = "per-modality classifiers; a meta-classifier over their logits (absent zeroed) + presence flags"
    paper = "Wolpert 1992, Stacked Generalization (Neural Networks)"

    def __init__(self, input_dims, num_classes, **hparams):
        super().__init__(input_dims, num_classes, **hparams)
        n = len(self.modalities)
        self.meta = mlp(n * num_classes + n, self.hp("hidden"), num_classes, self.hp("dropout"))

    def forward(self, inputs, present, token_mask=None):
        logits = self.modality_logits(inputs, present)  # (B, M, C), absent rows zero
        features = torch.cat([logits.flatten(1), present.to(logits.dtype)], dim=-1)  # (B, M*C + M)
        return self.meta(features)  # (B, C)
