"""Masked multi-head attention on the fused kernel, for the token strategies.

``MaskedAttention`` computes what ``nn.MultiheadAttention(hidden, heads, dropout,
batch_first=True)`` computes with a key padding mask, through
``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient kernels where
the device has them, never materialising the attention weights), with two differences that
the missing-modality contract needs:

* a query row with no valid key (e.g. the other modalities are all absent) gets exactly zero,
  not NaN: such rows attend to every (zeroed) key, and the result is replaced by zeros;
* invalid keys are zeroed before the projections, so non-finite values behind the mask (an
  absent modality filled with inf) cannot leak into the output or the gradients.

The forward has no data-dependent Python control flow (masks are applied with ``torch.where``),
so a model can run under ``torch.func.vmap(torch.func.functional_call(...))`` over stacked
parameters (several seeds at once).

Parameters and their initialisation are those of ``nn.MultiheadAttention`` (a packed
``in_proj_weight`` (3H, H) = [W_q; W_k; W_v] with Xavier-uniform init, zero ``in_proj_bias``,
``out_proj`` Linear(H, H) with zero bias, drawn in the same order): same parameter count, same
state_dict keys, and the same initial weights for the same seed.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class MaskedAttention(nn.Module):
    """Multi-head attention of queries over the valid keys. Dropout on the attention weights
    in training mode, as in ``nn.MultiheadAttention``."""

    def __init__(self, hidden: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden width {hidden} is not divisible by {heads} heads")
        self.hidden, self.heads, self.dropout = int(hidden), int(heads), float(dropout)
        self.in_proj_weight = nn.Parameter(torch.empty(3 * hidden, hidden))  # [W_q; W_k; W_v]
        self.in_proj_bias = nn.Parameter(torch.empty(3 * hidden))
        self.out_proj = nn.Linear(hidden, hidden)  # drawn before in_proj, as in nn.MultiheadAttention
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.heads, -1)).transpose(-3, -2)  # (B, T, H) -> (B, heads, T, H / heads)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, key_valid: torch.Tensor | None = None) -> torch.Tensor:
        """query: (B, T_q, H); keys (also the values): (B, T_k, H); key_valid: bool (B, T_k),
        True = attend, or None for all keys. -> (B, T_q, H), exactly zero in rows with no valid key."""
        w_q, w_kv = self.in_proj_weight.split([self.hidden, 2 * self.hidden])  # (H, H), (2H, H)
        b_q, b_kv = self.in_proj_bias.split([self.hidden, 2 * self.hidden])  # (H,), (2H,)
        mask = has_keys = None
        if key_valid is not None:
            has_keys = key_valid.any(dim=-1)  # (B,)
            safe_valid = key_valid | ~has_keys.unsqueeze(-1)  # (B, T_k): never a fully masked row
            keys = torch.where(key_valid.unsqueeze(-1), keys, torch.zeros((), dtype=keys.dtype, device=keys.device))  # (B, T_k, H)
            mask = safe_valid.unsqueeze(-2).unsqueeze(-2)  # (B, 1, 1, T_k), broadcast over heads and queries
        q = self._split_heads(F.linear(query, w_q, b_q))  # (B, heads, T_q, H / heads)
        k, v = (self._split_heads(t) for t in F.linear(keys, w_kv, b_kv).chunk(2, dim=-1))  # (B, heads, T_k, H / heads) each
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )  # (B, heads, T_q, H / heads)
        out = self.out_proj(attended.transpose(-3, -2).flatten(-2))  # (B, T_q, H)
        if has_keys is None:  # structural (whether a mask was given), not data-dependent
            return out
        return torch.where(has_keys.view(-1, 1, 1), out, torch.zeros((), dtype=out.dtype, device=out.device))  # (B, T_q, H)


class SelfAttentionLayer(nn.Module):
    """A pre-norm transformer encoder layer on ``MaskedAttention``: x + Dropout(SelfAttn(LN(x))),
    then x + Dropout(W_2 Dropout(ReLU(W_1 LN(x)))). The same parameters (names included),
    initialisation and computation as ``nn.TransformerEncoderLayer(hidden, heads, feedforward,
    dropout, batch_first=True, norm_first=True)``, except that a row with no valid token gets no
    attention update instead of NaN."""

    def __init__(self, hidden: int, heads: int, feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MaskedAttention(hidden, heads, dropout)
        self.linear1 = nn.Linear(hidden, feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(feedforward, hidden)
        self.norm1 = nn.LayerNorm(hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, H); valid: bool (B, T), True = real token, or None. -> (B, T, H)."""
        normed = self.norm1(x)  # (B, T, H)
        x = x + self.dropout1(self.self_attn(normed, normed, valid))  # (B, T, H)
        return x + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(self.norm2(x))))))  # (B, T, H)
