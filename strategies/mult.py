"""MulT: crossmodal transformer over unaligned token sequences."""

from __future__ import annotations

import torch
from torch import nn

from strategies.attention import project_tokens
from strategies.base import FusionStrategy, masked_mean, mlp, pool_tokens
from strategies.fused_attention import MaskedAttention, SelfAttentionLayer
from strategies.registration import register_strategy
from strategies.search_space import Categorical, FloatParam


class CrossmodalBlock(nn.Module):
    """Target tokens attend to source tokens (pre-norm), then a position-wise feed-forward."""

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.query_norm = nn.LayerNorm(hidden)
        self.key_norm = nn.LayerNorm(hidden)
        self.attention = MaskedAttention(hidden, heads, dropout)
        self.ff_norm = nn.LayerNorm(hidden)
        self.ff = mlp(hidden, 2 * hidden, hidden, dropout)

    def forward(self, target: torch.Tensor, source: torch.Tensor, source_valid: torch.Tensor) -> torch.Tensor:
        # target: (B, T_t, H); source: (B, T_s, H); source_valid: bool (B, T_s) -> (B, T_t, H)
        x = target + self.attention(self.query_norm(target), self.key_norm(source), source_valid)  # (B, T_t, H)
        return x + self.ff(self.ff_norm(x))  # (B, T_t, H)


@register_strategy("mult")
class MulT(FusionStrategy):
    """Multimodal Transformer: tokens are projected and given sinusoidal positions (the shared
    input stage of every token strategy); for every target modality, one crossmodal attention
    block per source modality lets the target's tokens attend to that source's tokens (key
    padding masks; an absent source contributes no attention). The per-source outputs are
    concatenated, projected, passed through a self-attention layer, pooled over valid tokens,
    and averaged over the present target modalities.

    Tsai, Bai, Liang, Kolter, Morency & Salakhutdinov, "Multimodal Transformer for Unaligned
    Multimodal Language Sequences", ACL 2019. Unlike the paper: a linear input projection
    instead of a 1-D temporal convolution, positions added without scaling the embeddings by
    sqrt(H), one crossmodal block per (source, target) pair instead of a stack, and a masked
    mean pool averaged over present targets instead of the last time step of each target,
    concatenated.
    """

    family = "attention"
    consumes_tokens = True
    description = ("crossmodal transformer, shallow: one attention block per (source -> target) pair, "
                   "one self-attention layer, pooled per target")
    paper = "Tsai et al. 2019, Multimodal Transformer for Unaligned Multimodal Language Sequences (ACL)"
    search_space = {
        "hidden": Categorical([32, 64, 128], default=64),
        "heads": Categorical([2, 4], default=4),
        "dropout": FloatParam(0.0, 0.5, default=0.1),
    }

    def __init__(self, input_dims, num_classes, **hparams):
        super().__init__(input_dims, num_classes, **hparams)
        hidden, heads, dropout, n = self.hp("hidden"), self.hp("heads"), self.hp("dropout"), len(self.modalities)
        self.projections = nn.ModuleDict({m: nn.Linear(d, hidden) for m, d in self.input_dims.items()})
        self.crossmodal = nn.ModuleDict(
            {f"{s}_to_{t}": CrossmodalBlock(hidden, heads, dropout)
             for t in self.modalities for s in self.modalities if s != t}
        )
        self.merge = nn.ModuleDict({t: nn.Linear((n - 1) * hidden, hidden) for t in self.modalities})
        self.self_attention = nn.ModuleDict(
            {t: SelfAttentionLayer(hidden, heads, 2 * hidden, dropout) for t in self.modalities}  # pre-norm
        )
        self.head = mlp(hidden, hidden, num_classes, dropout)

    def forward(self, inputs, present, token_mask=None):
        tokens, valid = project_tokens(self.projections, self.modalities, inputs, present, token_mask)  # (B, T_m, H) with positions
        pooled = []
        for i, t in enumerate(self.modalities):
            crossed = [self.crossmodal[f"{s}_to_{t}"](tokens[t], tokens[s], valid[s])  # (B, T_t, H)
                       for s in self.modalities if s != t]
            x = self.merge[t](torch.cat(crossed, dim=-1))  # (B, T_t, H)
            own = valid[t] | ~present[:, i : i + 1]  # (B, T_t): absent targets keep all tokens (excluded below)
            x = self.self_attention[t](x, own)  # (B, T_t, H)
            pooled.append(pool_tokens(x, own))  # (B, H)
        return self.head(masked_mean(torch.stack(pooled, dim=1), present))  # (B, C)
