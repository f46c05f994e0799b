"""Network merge (CentralNet): per-modality MLP towers with their own classifier heads, whose
hidden layers a central network merges layer by layer."""

from __future__ import annotations

import torch
from torch import nn

from strategies.base import AuxiliaryLogits, FusionStrategy, mlp, zero_absent
from strategies.registration import register_strategy
from strategies.search_space import FloatParam, IntParam


@register_strategy("network_merge")
class NetworkMerge(FusionStrategy):
    """Every modality has its own MLP tower ending in its own linear classifier head; a central
    network merges, at every hidden layer, its own previous state with the towers' hidden
    states (absent towers zeroed, plus presence flags) and classifies its final state. The
    central logits are the output; each tower's head gives auxiliary logits whose cross-entropy,
    weighted by the hyperparameter ``aux_weight`` (tuned in 0..1, default 0.5, the same for
    every modality), the training loop adds to the loss on the rows where that modality is
    present. The heads are trained only through these auxiliary losses.

    Vielzeuf, Lechervy, Pateux & Jurie, "CentralNet: a Multilayer Approach for Multimodal
    Fusion", ECCV Workshops 2018. Unlike the paper, each central merge is a learned linear
    layer over [central state; tower states; presence flags] followed by a GELU, instead of a
    learned scalar-weighted sum of the central and tower states; the central classifier is a
    two-layer MLP.
    """

    family = "intermediate"
    description = ("CentralNet: per-modality MLP towers with auxiliary heads (loss weight aux_weight); a central net "
                   "merges every hidden layer (learned linear merges, not the paper's scalar weights)")
    paper = "Vielzeuf et al. 2018, CentralNet: a Multilayer Approach for Multimodal Fusion (ECCV Workshops)"
    search_space = {
        "hidden": IntParam(32, 256, default=64, log=True),
        "layers": IntParam(1, 3, default=2),
        "aux_weight": FloatParam(0.0, 1.0, default=0.5),
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
        self.tower_heads = nn.ModuleDict({m: nn.Linear(hidden, num_classes) for m in self.modalities})

    def _run(self, inputs, present) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """-> central logits (B, C) and the towers' final states, each (B, H), zero where absent."""
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
        return self.head(central), states  # (B, C), [(B, H)] * M

    def forward(self, inputs, present, token_mask=None):
        return self._run(inputs, present)[0]  # (B, C)

    def forward_with_aux(self, inputs, present, token_mask=None):
        logits, states = self._run(inputs, present)  # (B, C), [(B, H)] * M
        weight = float(self.hp("aux_weight"))
        aux = [AuxiliaryLogits(self.tower_heads[m](self.drop(s)), present[:, i], weight)  # (B, C), (B,)
               for i, (m, s) in enumerate(zip(self.modalities, states))]
        return logits, aux
