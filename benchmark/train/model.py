"""A fusion model as a composition, after TorchMultimodal's ``LateFusion(encoders, fusion,
head)``: trainable encoders (one per modality that has one) in front of a fusion strategy.

The strategy's metadata (``family``, ``consumes_tokens``) travels with the model, so the
loop, evaluation and cost code never need to know whether an encoder is trainable."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from benchmark.features.tensors import FeatureSet
from benchmark.vocabulary import FINETUNE, MISSING_INPUT, MISSING_ZERO, finetune_of
from benchmark.train.missing_inputs import missing_input_module
from benchmark.train.trainable_encoders import build_front_end, output_width
from strategies import FusionStrategy, get_strategy


class FusionModel(nn.Module):
    """``encoders -> strategy -> output scale``. ``forward(inputs, present, token_mask)`` keeps the
    strategy contract: each modality with a trainable encoder is passed through it first; the
    others reach the strategy as they are. The strategy's outputs are mapped by a fixed affine
    ``output * output_scale + output_shift``: the identity for classification; for regression the
    training labels' standard deviation and mean, so that a freshly initialised strategy (outputs
    near 0, of unit scale) starts at the mean label and learns z-scores, whatever the label's units.

    ``missing_input`` fills absent modalities (benchmark/train/missing_inputs.py): "zero" (the
    default, the strategy masks them) or "learned" (a trainable vector per modality, after the
    encoders, stands in for them and the strategy sees them present).

    ``pretrained``: the modalities whose encoder starts from pretrained weights (fine-tuned,
    benchmark/train/finetuned_encoders.py); their parameters train at the encoder learning rate
    (:meth:`parameter_groups`)."""

    def __init__(self, strategy: FusionStrategy, encoders: Mapping[str, nn.Module] | None = None,
                 output_scale: float = 1.0, output_shift: float = 0.0, missing_input: str = MISSING_ZERO,
                 pretrained: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.strategy = strategy
        self.encoders = nn.ModuleDict(dict(encoders or {}))
        self.pretrained = frozenset(pretrained)
        self.missing_input = missing_input
        self.missing = missing_input_module(missing_input, strategy.input_dims)  # None for "zero": no parameters
        self.register_buffer("output_scale", torch.tensor(float(output_scale)))  # () fixed, not trained
        self.register_buffer("output_shift", torch.tensor(float(output_shift)))  # ()

    @property
    def family(self) -> str:
        return self.strategy.family

    @property
    def consumes_tokens(self) -> bool:
        return self.strategy.consumes_tokens

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """The parameters of the pretrained (fine-tuned) encoders, in sorted modality order."""
        return [p for m in sorted(self.pretrained) for p in self.encoders[m].parameters()]

    def parameter_groups(self, encoder_lr_scale: float) -> list[dict]:
        """The optimizer's parameter groups: every parameter but the pretrained encoders' at the
        run's rate (``lr_scale`` 1), then theirs, if any, at ``encoder_lr_scale`` times it (the
        loop sets each group's rate from its scale at every step)."""
        pretrained = {id(p) for p in self.pretrained_parameters()}
        groups = [{"params": [p for p in self.parameters() if id(p) not in pretrained], "lr_scale": 1.0}]
        if pretrained:
            groups.append({"params": self.pretrained_parameters(), "lr_scale": float(encoder_lr_scale)})
        return groups

    def _encode(self, inputs: Mapping[str, torch.Tensor], token_mask: Mapping[str, torch.Tensor] | None):
        """Pass each modality that has a trainable encoder through it. -> (inputs, token_mask)"""
        if not len(self.encoders):
            return inputs, token_mask
        inputs = dict(inputs)
        token_mask = dict(token_mask) if token_mask is not None else None
        for m, encoder in self.encoders.items():
            inputs[m], mask = encoder(inputs[m], tokens=self.consumes_tokens)  # (B, D) or (B, T, D)
            if token_mask is not None and mask is not None:
                token_mask[m] = mask  # (B, T)
        return inputs, token_mask

    def forward(self, inputs: Mapping[str, torch.Tensor], present: torch.Tensor,
                token_mask: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        inputs, present, token_mask = self._prepare(inputs, present, token_mask)
        return self._scaled(self.strategy(inputs, present, token_mask))  # (B, C)

    def _prepare(self, inputs, present: torch.Tensor, token_mask):
        """Encoders first, then the learned vectors in place of absent modalities (with "learned").
        -> (inputs, present (B, M), token_mask)"""
        inputs, token_mask = self._encode(inputs, token_mask)
        if self.missing is not None:
            inputs, present, token_mask = self.missing(inputs, present, token_mask)
        return inputs, present, token_mask

    def _scaled(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs * self.output_scale + self.output_shift  # (B, C)

    def forward_with_aux(self, inputs: Mapping[str, torch.Tensor], present: torch.Tensor,
                         token_mask: Mapping[str, torch.Tensor] | None = None):
        """Logits (B, C) and the strategy's auxiliary classifier outputs (training only)."""
        inputs, present, token_mask = self._prepare(inputs, present, token_mask)
        logits, auxiliary = self.strategy.forward_with_aux(inputs, present, token_mask)
        return self._scaled(logits), [aux._replace(logits=self._scaled(aux.logits)) for aux in auxiliary]


def build_model(strategy: str, features: FeatureSet, hparams: dict[str, Any], seed: int) -> FusionModel:
    """The strategy on the feature widths, with a trainable encoder in front of each modality
    whose features are that encoder's raw input (e.g. ``small_cnn``). Seeded: the strategy's
    weights are drawn first, then the encoders', in sorted modality order. ``hparams["missing_input"]``
    ("zero" or "learned") goes to the FusionModel, not to the strategy; ``hparams["finetune"]`` must be
    the mode ``features`` were built for (a fine-tuned cell never trains on frozen features)."""
    torch.manual_seed(seed)
    hparams = dict(hparams)
    missing_input = hparams.pop(MISSING_INPUT, MISSING_ZERO)
    finetune = finetune_of({FINETUNE: hparams.pop(FINETUNE)} if FINETUNE in hparams else {})
    if finetune != features.finetune:
        raise ValueError(f"{strategy}: a {finetune!r} model needs features built for it, got {features.finetune!r} "
                         f"features of {features.dataset!r}")
    cls = get_strategy(strategy)
    widths = {m: output_width(f) for m, f in features.front_ends.items()}
    dims = {m: widths.get(m, d) for m, d in features.input_dims(tokens=cls.consumes_tokens).items()}
    strategy_module = cls(dims, features.output_dim, **hparams)  # output width of the task (FeatureSet.output_dim)
    encoders = {m: build_front_end(features.front_ends[m]) for m in sorted(features.front_ends)}
    pretrained = frozenset(m for m, f in features.front_ends.items() if f.pretrained)
    return FusionModel(strategy_module, encoders, *output_affine(features), missing_input=missing_input,
                       pretrained=pretrained)


def output_affine(features: FeatureSet) -> tuple[float, float]:
    """(scale, shift) of the model's outputs: for regression the training labels' standard
    deviation (1 when they are constant) and mean, else the identity (1, 0)."""
    if features.task != "regression":
        return 1.0, 0.0
    labels = features.splits["train"].labels.detach().double().cpu()  # (N,)
    sd = float(labels.std()) if len(labels) > 1 else 0.0
    return (sd if sd > 1e-12 else 1.0), float(labels.mean())
