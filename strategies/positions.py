"""Position information for token strategies, in one place.

Token sequences reach a strategy as ``(B, T_m, D_m)`` with a token mask (True = real token),
in their modality's order: image patches in raster order, text tokens, audio segments, table
columns. Attention and pooling are blind to that order (attention is permutation-equivariant
in its queries and invariant in its keys), so every strategy with ``consumes_tokens = True``
adds positions here, through ``strategies.attention.project_tokens``, right after each
modality's input projection to the hidden width (DESIGN.md section 7: attention over a bag of
patches is not a fair comparison with a model that sees the layout).

The encoding is the fixed sinusoidal one of Vaswani et al., "Attention Is All You Need",
NeurIPS 2017, over the 1-D sequence index: it has no parameters (none can go untrained) and
works for any length T, so one strategy serves every dataset. Padded tokens get positions
too, but they are masked out of attention and pooling like their values; sequences are
right-padded, so real tokens keep the indices 0..len-1.
"""

from __future__ import annotations

import math

import torch

MAX_PERIOD = 10000.0  # the base of the geometric frequency ladder (Vaswani et al. 2017)


def sinusoidal_positions(length: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Fixed sinusoidal position encodings: even features sin(t w_k), odd features cos(t w_k),
    with w_k = MAX_PERIOD^(-2k / width). Values lie in [-1, 1]. -> (T, H)."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)  # (T, 1)
    freq = torch.exp(torch.arange(0, width, 2, device=device, dtype=torch.float32)
                     * (-math.log(MAX_PERIOD) / width))  # (ceil(H / 2),)
    table = torch.zeros(length, width, device=device)  # (T, H)
    table[:, 0::2] = torch.sin(position * freq)  # (T, ceil(H / 2))
    table[:, 1::2] = torch.cos(position * freq[: width // 2])  # (T, floor(H / 2))
    return table.to(dtype)


def add_positions(tokens: torch.Tensor) -> torch.Tensor:
    """Add the sinusoidal position of each token along the sequence axis.

    tokens: (B, T, H) projected tokens -> (B, T, H)."""
    _, length, width = tokens.shape
    return tokens + sinusoidal_positions(length, width, tokens.device, tokens.dtype)  # (B, T, H)
