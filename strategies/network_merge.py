"""Network merge: per-modality MLP towers whose hidden layers are merged by learned linear layers."""

from __future__ import annotations

import torch
from torch import nn

from strategies import register_strategy
from strategies.base import FusionStrategy, mlp, zero_absent
from strategies.search_space import FloatParam, IntParam


@register_strategy("network_merge")
class NetworkMerge(FusionStrategy):
    """Every modality has its own MLP tower; a central network merges, at every hidden layer,
    its own previous state with the towers' hidden states (absent towers zeroed, plus presence
    flags) through a learned linear layer, then classifies the final central state.

    Layer-wise merging of modality networks after Vielzeuf et al., "CentralNet: a Multilayer
    Approach for Multimodal Fusion", ECCV Workshops 2018 (learned linear merge instead of scalars).
    """

    family = "intermediate"
    description = "per-modality MLP towers; each hidden layer merged into a central net by a learned linear layer"
    paper = "Vielzeuf et al. 2018, CentralNet: a Multilayer Approach for Multimodal Fusion (ECCV Workshops)"
    search_space = {
        "hidden": IntParam(32, 256, default=64, log=True),
        "layers": IntParam(1, 3, default=2),
        "dropout": FloatParam(0.0, 0.5, default=0.1),
    }

    def __init__(self, input_dims, num_classes, **hparams):
        super().__init__(input_dims, num_classes, **hparams)
        hidden, layers, n = self.hp("hidden"), self.hp("layers"), len(self.modalities)
        self.towers = nn.ModuleDict(
            {
                m: nn.ModuleList([nn.Linear(d if i == 0 else hidden, hidden) for i in range(layers)])
                for m, d in self.input_dims.items()
            }
        )
        # Merge l sees: central state (absent for l == 0), the M tower states, the M presence flags.
        self.merges = nn.ModuleList(
            [nn.Linear((0 if i == 0 else hidden) + n * hidden + n, hidden) for i in range(layers)]
        )
        self.act = nn.GELU()
        self.drop = nn.Dropout(self.hp("dropout"))
        self.head = mlp(hidden, hidden, num_classes, self.hp("dropout"))

    def forward(self, inputs, present, token_mask=None):
        states = [zero_absent(inputs[m], present[:, i]) for i, m in enumerate(self.modalities)]  # (B, D_m) each
        flags = present.to(states[0].dtype)  # (B, M)
        central = None
        for layer, merge in enumerate(self.merges):
            states = [
                zero_absent(self.act(self.towers[m][layer](s)), present[:, i])  # (B, H)
                for i, (m, s) in enumerate(zip(self.modalities, states))
            ]
            parts = ([] if central is None else [central]) + states + [flags]
            central = self.drop(self.act(merge(torch.cat(parts, dim=-1))))  # (B, H)
        return self.head(central)  # (B, C)
