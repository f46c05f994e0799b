"""The token budget of token strategies: a modality with more than ``max_tokens`` tokens is
pooled to at most that many before any strategy sees it, the same for every token strategy.

Attention costs grow with the square of the token count (cross-attention between a 7x7 image
grid and a 100-token review compares 4,900 pairs per head and layer), which made the attention
strategies 10 to 60 times dearer than the pooled ones on a CPU. Pooling keeps every input's
content at a coarser resolution instead of dropping tokens:

- an image grid (a square number of tokens, every one real in every row) is average-pooled in 2-D
  to the largest square grid within the budget (7x7 -> 4x4 for 16 tokens), kept in raster order,
  so the 1-D positions the strategies add (strategies/positions.py) still follow the layout;
- any other sequence (text tokens, audio segments, padded) is cut into windows of ``w`` consecutive
  tokens, w = ceil(longest length / max_tokens) taken over every split so a window means the same
  span everywhere, and each window becomes the masked mean of its real tokens; a window without a
  real token stays masked.

Modalities with a trainable front end (their "tokens" are that network's raw input) are left
alone, as are modalities within the budget. Pooled vectors (the pooled strategies' input) are
never touched. The budget is part of the matrix's identity (benchmark/run/planning.py, budget_tag)
and stated in the report."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

ROW_CHUNK = 512  # rows pooled at a time: bounds the float32 working copy of a split


def grid_side(length: int) -> int | None:
    """The side of a square grid of ``length`` tokens, or None when ``length`` is not a square."""
    side = math.isqrt(length)
    return side if side * side == length else None


def plan_pooling(lengths: list[int], all_real: bool, max_tokens: int) -> tuple[str, int] | None:
    """How a modality's tokens meet the budget, from its token counts over the splits and whether
    every token of every row is real: ("grid", output side), ("window", window length), or None
    when they already fit."""
    longest = max(lengths)
    if longest <= max_tokens:
        return None
    side = grid_side(longest)
    if all_real and side is not None and len(set(lengths)) == 1:
        return "grid", max(1, math.isqrt(max_tokens))
    return "window", math.ceil(longest / max_tokens)


def pool_grid(tokens: torch.Tensor, side: int) -> torch.Tensor:
    """Average-pool square token grids to ``side`` x ``side``. (N, S*S, D) -> (N, side*side, D), same dtype."""
    n, length, width = tokens.shape
    full = grid_side(length)
    out = tokens.new_empty((n, side * side, width))  # (N, side^2, D)
    for start in range(0, n, ROW_CHUNK):
        chunk = tokens[start:start + ROW_CHUNK].float()  # (b, S*S, D)
        grid = chunk.transpose(1, 2).reshape(len(chunk), width, full, full)  # (b, D, S, S), raster order
        pooled = F.adaptive_avg_pool2d(grid, side)  # (b, D, side, side)
        out[start:start + ROW_CHUNK] = pooled.flatten(2).transpose(1, 2).to(tokens.dtype)  # (b, side^2, D)
    return out


def pool_windows(tokens: torch.Tensor, mask: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked means over consecutive windows of ``window`` tokens.
    (N, T, D), bool (N, T) -> (N, ceil(T / window), D) same dtype, bool (N, ceil(T / window))."""
    n, length, width = tokens.shape
    count = math.ceil(length / window)
    pad = count * window - length
    out = tokens.new_zeros((n, count, width))  # (N, K, D)
    out_mask = torch.zeros((n, count), dtype=torch.bool)  # (N, K)
    for start in range(0, n, ROW_CHUNK):
        chunk = F.pad(tokens[start:start + ROW_CHUNK].float(), (0, 0, 0, pad))  # (b, K*w, D)
        real = F.pad(mask[start:start + ROW_CHUNK].bool(), (0, pad)).float()  # (b, K*w)
        chunk = chunk.reshape(len(chunk), count, window, width)  # (b, K, w, D)
        real = real.reshape(len(real), count, window, 1)  # (b, K, w, 1)
        sums = (chunk * real).sum(dim=2)  # (b, K, D)
        counts = real.sum(dim=2)  # (b, K, 1)
        out[start:start + ROW_CHUNK] = (sums / counts.clamp(min=1)).to(tokens.dtype)  # (b, K, D)
        out_mask[start:start + ROW_CHUNK] = counts.squeeze(-1) > 0  # (b, K)
    return out, out_mask


def apply_token_budget(per_split: dict[str, dict[str, dict[str, torch.Tensor]]], modalities: list[str],
                       max_tokens: int | None) -> dict[str, str]:
    """Pool, in place, the "tokens" and "token_mask" of each split (split -> {"tokens": {m: (N, T, D)},
    "token_mask": {m: bool (N, T)}}) of ``modalities`` to at most ``max_tokens`` per row.
    -> modality -> what was done ("49 -> 16 tokens (4x4 grid)"), for the log and the report."""
    done: dict[str, str] = {}
    if max_tokens is None:
        return done
    for modality in modalities:
        tokens = [parts["tokens"][modality] for parts in per_split.values()]
        masks = [parts["token_mask"][modality] for parts in per_split.values()]
        lengths = [int(t.shape[1]) for t in tokens]
        all_real = all(bool(m.all()) for m in masks)
        plan = plan_pooling(lengths, all_real, max_tokens)
        if plan is None:
            continue
        how, size = plan
        for parts in per_split.values():
            if how == "grid":
                pooled = pool_grid(parts["tokens"][modality], size)  # (N, size^2, D)
                parts["tokens"][modality] = pooled
                parts["token_mask"][modality] = torch.ones(pooled.shape[:2], dtype=torch.bool)  # (N, size^2)
            else:
                parts["tokens"][modality], parts["token_mask"][modality] = pool_windows(
                    parts["tokens"][modality], parts["token_mask"][modality], size)
        longest = max(lengths)
        done[modality] = (f"{longest} -> {size * size} tokens ({grid_side(longest)}x{grid_side(longest)} grid pooled "
                          f"to {size}x{size})" if how == "grid" else
                          f"up to {longest} -> up to {math.ceil(longest / size)} tokens (means of {size})")
    return done
