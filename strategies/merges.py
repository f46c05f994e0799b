"""Merge fusion: project every modality to a shared width, then merge elementwise."""

from __future__ import annotations

import torch
from torch import nn

from strategies.base import FusionStrategy, masked_mean, mlp, zero_absent
from strategies.registration import register_strategy


class _ProjectThenMerge(FusionStrategy):
    """Shared machinery: one linear projection per modality to ``hidden``, a merge, an MLP head."""

    family = "intermediate"

    def __init__(self, input_dims, num_classes, **hparams):
        super().__init__(input_dims, num_classes, **hparams)
        hidden = self.hp("hidden")
        self.projections = nn.ModuleDict({m: nn.Linear(d, hidden) for m, d in self.input_dims.items()})
        self.head = mlp(hidden, hidden, num_classes, self.hp("dropout"))

    def project(self, inputs) -> torch.Tensor:
        return torch.stack([self.projections[m](inputs[m]) for m in self.modalities], dim=1)  # (B, M, H)

    def merge(self, projected: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, inputs, present, token_mask=None):
        # Zero absent inputs first so that even inf/NaN there cannot leak into gradients.
        clean = {m: zero_absent(inputs[m], present[:, i]) for i, m in enumerate(self.modalities)}  # (B, D_m)
        merged = self.merge(self.project(clean), present)  # (B, H)
        return self.head(merged)  # (B, C)


@register_strategy("sum")
class SumMerge(_ProjectThenMerge):
    """Sum of projected modality embeddings over the present modalities.

    Close to a factorised ``concat``: a sum of per-modality linear projections sum_m (W_m x_m +
    b_m) is one linear layer on the concatenation with absent parts zeroed, [W_1 ... W_M] x,
    plus sum_m b_m [m present], i.e. biases acting as presence flags; no nonlinearity follows
    before the head's first linear layer, so the two compose into concat's first layer written
    as a product of two matrices (the same functions at equal ``hidden``; only the
    parametrisation, and so the optimisation, differs).

    Additive merge as used in e.g. Ngiam et al., "Multimodal Deep Learning", ICML 2011 and
    compared in Baltrusaitis et al., TPAMI 2019.
    """

    description = ("project to a shared width, sum over present modalities, MLP head: close to a factorised concat "
                   "(sum of projections = one linear layer on the zero-filled concatenation)")
    paper = "Ngiam et al. 2011, Multimodal Deep Learning (ICML)"

    def merge(self, projected, present):
        keep = present.unsqueeze(-1)  # (B, M, 1)
        return torch.where(keep, projected, torch.zeros_like(projected)).sum(dim=1)  # (B, H)


def harmonic_mean(values: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Harmonic mean over the present modalities of strictly positive values.

    values: (B, M, H) > 0 ; present: bool (B, M) -> (B, H). Absent entries are ignored exactly.
    """
    keep = present.unsqueeze(-1)  # (B, M, 1)
    reciprocal = torch.where(keep, 1.0 / torch.where(keep, values, torch.ones_like(values)), torch.zeros_like(values))  # (B, M, H)
    count = present.to(values.dtype).sum(dim=1, keepdim=True).clamp_min(1.0)  # (B, 1)
    return count / reciprocal.sum(dim=1)  # (B, H)


@register_strategy("mean")
class MeanMerge(_ProjectThenMerge):
    """Mean of projected modality embeddings over the present modalities (a sum normalised by
    the number of present modalities, so its scale does not depend on how many are missing).

    Averaging fusion as compared in Feichtenhofer, Pinz & Zisserman, "Convolutional Two-Stream
    Network Fusion for Video Action Recognition", CVPR 2016.
    """

    description = "project to a shared width, average over present modalities, MLP head"
    paper = "Feichtenhofer et al. 2016, Convolutional Two-Stream Network Fusion for Video Action Recognition (CVPR)"

    def merge(self, projected, present):
        return masked_mean(projected, present)  # (B, H)


@register_strategy("max")
class MaxMerge(_ProjectThenMerge):
    """Elementwise maximum of projected modality embeddings over the present modalities.

    Max fusion from Feichtenhofer, Pinz & Zisserman, "Convolutional Two-Stream Network Fusion for
    Video Action Recognition", CVPR 2016.
    """

    description = "project to a shared width, elementwise max over present modalities, MLP head"
    paper = "Feichtenhofer et al. 2016, Convolutional Two-Stream Network Fusion for Video Action Recognition (CVPR)"

    def merge(self, projected, present):
        keep = present.unsqueeze(-1)  # (B, M, 1)
        lowest = torch.full_like(projected, float("-inf"))  # (B, M, H)
        return torch.where(keep, projected, lowest).amax(dim=1)  # (B, H); every row has a present modality


@register_strategy("product")
class ProductMerge(_ProjectThenMerge):
    """Elementwise (Hadamard) product of tanh-activated projections, prod_m tanh(W_m x_m + b_m),
    over the present modalities; an absent modality contributes the multiplicative identity 1.

    Pointwise multiplication of image and question embeddings as in Antol et al., "VQA: Visual
    Question Answering", ICCV 2015: tanh(W_i x_i) * tanh(W_q q). The paper's question embedding
    comes from an LSTM and its classifier has two tanh hidden layers; here every modality gets
    one linear layer + tanh on its (pooled) features and the head is the shared two-layer MLP.
    """

    description = "tanh(linear) per modality, elementwise product over present modalities (absent -> 1), MLP head"
    paper = "Antol et al. 2015, VQA: Visual Question Answering (ICCV)"

    def merge(self, projected, present):
        keep = present.unsqueeze(-1)  # (B, M, 1)
        return torch.where(keep, torch.tanh(projected), torch.ones_like(projected)).prod(dim=1)  # (B, H)


@register_strategy("harmonic")
class HarmonicMerge(_ProjectThenMerge):
    """Harmonic mean of positive projected embeddings (softplus + eps) over the present
    modalities: a soft minimum, dominated by the weakest modality in each feature.

    The harmonic mean is the generalised (power) mean combiner with exponent -1; see Kuncheva,
    "Combining Pattern Classifiers: Methods and Algorithms", Wiley 2004 (generalised mean).
    """

    description = "project, softplus+eps to make positive, harmonic mean over present modalities, MLP head"
    paper = "Kuncheva 2004, Combining Pattern Classifiers: Methods and Algorithms (Wiley), generalised mean"
    eps = 1e-3

    def merge(self, projected, present):
        positive = nn.functional.softplus(projected) + self.eps  # (B, M, H) > 0
        return harmonic_mean(positive, present)  # (B, H)
