"""The strategy contract shared by every fusion strategy (README, "Adding a strategy").

A strategy is a ``torch.nn.Module`` built from per-modality feature widths, a class count
and keyword hyperparameters. ``forward(inputs, present, token_mask=None)`` returns logits:

* ``inputs``: modality name -> ``(B, D_m)`` pooled features, or ``(B, T_m, D_m)`` token
  sequences when the class sets ``consumes_tokens = True``;
* ``present``: bool ``(B, M)``, columns in sorted modality order, at least one True per row;
* ``token_mask``: modality name -> bool ``(B, T_m)``, True for real tokens (token strategies).

The values of an absent modality must not change the output.

``forward_with_aux(inputs, present, token_mask=None)`` returns the same logits plus a list of
``AuxiliaryLogits`` (auxiliary classifiers, e.g. CentralNet's per-modality heads). The one
training loop adds ``weight * cross_entropy(aux.logits[aux.rows], y[aux.rows])`` for each entry
with a non-empty ``rows`` to the loss; evaluation uses ``forward`` only. Most strategies have
none (the default returns ``[]``).
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, NamedTuple

import torch
from torch import nn

from strategies.search_space import FloatParam, IntParam, Param, defaults

FAMILIES = ("unimodal", "early", "intermediate", "late", "attention", "hybrid")


class AuxiliaryLogits(NamedTuple):
    """One auxiliary classifier's output. The training loop adds
    ``weight * cross_entropy(logits[rows], y[rows])`` to the loss (skipped when no row counts)."""

    logits: torch.Tensor  # (B, C)
    rows: torch.Tensor  # bool (B,): the rows whose loss counts, e.g. where the head's modality is present
    weight: float  # >= 0


class FusionStrategy(nn.Module):
    """Base class: metadata, hyperparameter storage and masking helpers. No training logic."""

    family: ClassVar[str] = ""
    consumes_tokens: ClassVar[bool] = False
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    min_modalities: ClassVar[int] = 2
    max_modalities: ClassVar[int | None] = None
    search_space: ClassVar[dict[str, Param]] = {
        "hidden": IntParam(32, 256, default=128, log=True),
        "dropout": FloatParam(0.0, 0.5, default=0.1),
    }
    name: ClassVar[str] = ""  # set by the registry decorator

    def __init__(self, input_dims: Mapping[str, int], num_classes: int, **hparams: Any) -> None:
        super().__init__()
        self.modalities: list[str] = sorted(input_dims)
        self.input_dims = {m: int(input_dims[m]) for m in self.modalities}
        self.num_classes = int(num_classes)
        self.hparams = {**defaults(self.search_space), **hparams}
        unknown = set(hparams) - set(self.search_space) - set(self.extra_hparams())
        if unknown:
            raise ValueError(
                f"strategy {self.name or type(self).__name__!r} got unknown hyperparameters {sorted(unknown)}; "
                f"it accepts {sorted(set(self.search_space) | set(self.extra_hparams()))}"
            )
        n = len(self.modalities)
        if n < self.min_modalities or (self.max_modalities is not None and n > self.max_modalities):
            limit = f"{self.min_modalities}..{self.max_modalities or 'any'}"
            raise ValueError(
                f"strategy {self.name or type(self).__name__!r} supports {limit} modalities, "
                f"got {n}: {self.modalities}"
            )

    @classmethod
    def extra_hparams(cls) -> tuple[str, ...]:
        """Hyperparameters accepted but not tuned (e.g. which modality a baseline uses)."""
        return ()

    def hp(self, key: str) -> Any:
        return self.hparams[key]

    def forward_with_aux(self, inputs, present, token_mask=None) -> tuple[torch.Tensor, list[AuxiliaryLogits]]:
        """Logits (B, C) plus auxiliary classifier outputs whose cross-entropy the one training loop
        adds to the loss. ``forward`` returns exactly these logits; override both together."""
        return self(inputs, present, token_mask), []


def zero_absent(x: torch.Tensor, present_col: torch.Tensor) -> torch.Tensor:
    """Replace the rows of an absent modality by zeros (safe even for inf/NaN inputs).

    x: (B, ...) ; present_col: bool (B,)
    """
    mask = present_col.view(-1, *([1] * (x.dim() - 1)))
    return torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))


def masked_mean(stacked: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean over the present modalities. stacked: (B, M, H); present: bool (B, M) -> (B, H)."""
    weights = present.to(stacked.dtype).unsqueeze(-1)  # (B, M, 1)
    total = torch.where(weights.bool(), stacked, torch.zeros_like(stacked)).sum(dim=1)  # (B, H)
    return total / weights.sum(dim=1).clamp_min(1.0)


def masked_softmax(scores: torch.Tensor, present: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax over present entries only; absent entries get weight exactly 0."""
    scores = scores.masked_fill(~present, float("-inf"))
    return torch.softmax(scores, dim=dim)


def mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    """A two-layer perceptron used as head or tower by many strategies."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim)
    )


def pool_tokens(tokens: torch.Tensor, token_mask: torch.Tensor | None) -> torch.Tensor:
    """Masked mean over tokens. tokens: (B, T, D); token_mask: bool (B, T) -> (B, D)."""
    if token_mask is None:
        return tokens.mean(dim=1)
    return masked_mean(tokens, token_mask)


def key_padding(token_mask: Mapping[str, torch.Tensor] | None, modality: str, tokens: torch.Tensor) -> torch.Tensor:
    """Valid-token mask for one modality, all True when the batch carries none. -> bool (B, T)."""
    if token_mask is not None and modality in token_mask:
        return token_mask[modality]
    return torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
