"""FiLM: feature-wise linear modulation of one modality by the others."""

from __future__ import annotations

import torch
from torch import nn

from strategies.base import FusionStrategy, masked_mean, mlp, zero_absent
from strategies.registration import register_strategy


@register_strategy("film")
class FiLMFusion(FusionStrategy):
    """Symmetric FiLM: every modality in turn is the base, whose features h_m are modulated by
    each other modality s (sorted order): h <- gamma_s(x_s) * h + beta_s(x_s), with gamma = 1 + delta.
    An absent conditioner contributes the identity (gamma = 1, beta = 0); an absent base is
    dropped from the final mean over present bases, so any present subset works (a lone
    modality is simply its own unmodulated features).

    Perez, Strub, de Vries, Dumoulin & Courville, "FiLM: Visual Reasoning with a General
    Conditioning Layer", AAAI 2018.
    """

    family = "intermediate"
    description = "each present modality FiLM-modulated (gamma, beta) by the others (absent -> identity); mean over present"
    paper = "Perez et al. 2018, FiLM: Visual Reasoning with a General Conditioning Layer (AAAI)"

    def __init__(self, input_dims, num_classes, **hparams):
        super().__init__(input_dims, num_classes, **hparams)
        hidden = self.hp("hidden")
        self.bases = nn.ModuleDict({m: nn.Linear(d, hidden) for m, d in self.input_dims.items()})
        self.generators = nn.ModuleDict(
            {f"{s}_to_{m}": nn.Linear(self.input_dims[s], 2 * hidden)
             for m in self.modalities for s in self.modalities if s != m}
        )
        self.act = nn.ReLU()
        self.head = mlp(hidden, hidden, num_classes, self.hp("dropout"))

    def modulation(self, source: str, target: str, x: torch.Tensor, present_col: torch.Tensor):
        """gamma, beta (each (B, H)) that ``source`` applies to ``target``; identity where absent."""
        delta, beta = self.generators[f"{source}_to_{target}"](x).chunk(2, dim=-1)  # (B, H) each
        gamma = 1.0 + zero_absent(delta, present_col)  # (B, H): exactly 1 where source is absent
        return gamma, zero_absent(beta, present_col)

    def forward(self, inputs, present, token_mask=None):
        clean = {m: zero_absent(inputs[m], present[:, i]) for i, m in enumerate(self.modalities)}  # (B, D_m)
        outputs = []
        for m in self.modalities:
            h = self.bases[m](clean[m])  # (B, H)
            for j, s in enumerate(self.modalities):
                if s != m:
                    gamma, beta = self.modulation(s, m, clean[s], present[:, j])
                    h = gamma * h + beta  # (B, H)
            outputs.append(self.act(h))
        return self.head(masked_mean(torch.stack(outputs, dim=1), present))  # (B, C)
