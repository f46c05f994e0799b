"""Trainable encoders: small networks trained end to end with the fusion strategy.

A modality whose card encoder names a front end (``small_cnn``) is cached as raw pixels;
:func:`build_front_end` makes its network, which :class:`~benchmark.train.model.FusionModel`
puts in front of the strategy. The strategy sees the network's output as that modality's
features: a pooled ``(B, width)`` vector, or for token strategies a ``grid x grid`` map of
``width``-d tokens."""

from __future__ import annotations

import torch
from torch import nn

from benchmark.features.base import FrontEnd
from benchmark.features.image import patches_to_image
from benchmark.train.finetuned_encoders import build_finetuned


class SmallCNN(nn.Module):
    """Two 3x3 conv blocks (16 and ``width`` channels, each ReLU + 2x2 max-pool) for small
    images. GroupNorm (per sample) rather than BatchNorm, so one row's input can never
    change another row's output. (B, C, S, S) -> feature map (B, width, S/4, S/4); the pooled
    vector is the map averaged to 3x3, flattened and projected to ``width``."""

    def __init__(self, channels: int, width: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1), nn.GroupNorm(4, 16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, width, 3, padding=1), nn.GroupNorm(8, width), nn.ReLU(), nn.MaxPool2d(2),
        )
        # Pooled output: a 3x3 grid flattened and projected (global average pooling alone
        # throws away where the strokes are, which digits need).
        self.project = nn.Sequential(nn.Flatten(), nn.Linear(width * 9, width), nn.ReLU())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def pooled(self, fmap: torch.Tensor) -> torch.Tensor:
        """(B, W, h, w) -> (B, W)"""
        return self.project(nn.functional.adaptive_avg_pool2d(fmap, 3))


class PixelCNN(nn.Module):
    """A :class:`SmallCNN` over one modality's cached pixels, either flattened ``(B, C*S*S)``
    or as patch tokens ``(B, (S/P)^2, C*P*P)``. ``forward(x, tokens)`` -> (features, token
    mask or None): pooled ``(B, width)``, or ``(B, grid*grid, width)`` tokens, all valid."""

    def __init__(self, channels: int, size: int, patch: int, width: int = 64, grid: int = 3) -> None:
        super().__init__()
        self.channels, self.size, self.patch, self.width, self.grid = channels, size, patch, width, grid
        self.cnn = SmallCNN(channels, width)

    def forward(self, x: torch.Tensor, tokens: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        if x.dim() == 3:  # patch tokens (B, T, C*P*P)
            images = patches_to_image(x, self.channels, self.size, self.patch)  # (B, C, S, S)
        else:  # flattened pixels (B, C*S*S)
            images = x.reshape(-1, self.channels, self.size, self.size)  # (B, C, S, S)
        fmap = self.cnn(images)  # (B, W, h, w)
        if not tokens:
            return self.cnn.pooled(fmap), None  # (B, W)
        grid = nn.functional.adaptive_avg_pool2d(fmap, self.grid)  # (B, W, g, g)
        mask = torch.ones(x.shape[0], self.grid * self.grid, dtype=torch.bool, device=x.device)  # (B, g*g)
        return grid.flatten(2).transpose(1, 2), mask  # (B, g*g, W)


def output_width(front_end: FrontEnd) -> int:
    """The feature width the strategy receives from this front end (default 64)."""
    return int(front_end.options.get("width", 64))


def build_front_end(front_end: FrontEnd) -> nn.Module:
    """The network a :class:`FrontEnd` names; its output width is :func:`output_width`. A pretrained
    one is a fine-tuned encoder (benchmark/train/finetuned_encoders.py)."""
    if front_end.pretrained:
        return build_finetuned(front_end)
    if front_end.kind != "small_cnn":
        raise ValueError(f"unknown trainable front end {front_end.kind!r}; known: small_cnn")
    o = front_end.options
    return PixelCNN(int(o["channels"]), int(o["size"]), int(o["patch"]), output_width(front_end))
