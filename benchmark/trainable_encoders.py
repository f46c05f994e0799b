"""Trainable encoders: small networks trained end to end with the fusion strategy.

A modality whose card encoder is trainable (``small_cnn``) is cached as raw pixels; at model
build time :func:`wrap_trainable` puts one :class:`SmallCNN` per such modality in front of
the strategy. The strategy sees the CNN's outputs as that modality's features: a pooled
``(B, width)`` vector, or for token strategies a ``grid x grid`` map of ``width``-d tokens.
The shared training loop optimises the CNNs and the strategy together (one ``nn.Module``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from benchmark.encoders import patches_to_image


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


class TrainableFrontEnd(nn.Module):
    """Wraps a fusion strategy: trainable modalities go through their CNN first.

    ``forward(inputs, present, token_mask)`` keeps the strategy contract; ``consumes_tokens``
    mirrors the strategy's, so the training loop feeds pooled pixels or patch tokens."""

    def __init__(self, strategy: nn.Module, geometry: dict[str, dict[str, Any]], grid: int = 3) -> None:
        super().__init__()
        self.strategy = strategy
        self.geometry = geometry
        self.grid = grid
        self.encoders = nn.ModuleDict({m: SmallCNN(g["channels"], g["width"]) for m, g in geometry.items()})

    @property
    def consumes_tokens(self) -> bool:
        return bool(getattr(self.strategy, "consumes_tokens", False))

    def forward(self, inputs, present, token_mask=None):
        inputs = dict(inputs)
        token_mask = dict(token_mask) if token_mask is not None else None
        for m, g in self.geometry.items():
            x = inputs[m]
            if x.dim() == 3:  # patch tokens (B, T, C*P*P)
                images = patches_to_image(x, g["channels"], g["size"], g["patch"])
            else:  # flattened pixels (B, C*S*S)
                images = x.reshape(-1, g["channels"], g["size"], g["size"])
            fmap = self.encoders[m](images)  # (B, W, h, w)
            if self.consumes_tokens:
                grid = nn.functional.adaptive_avg_pool2d(fmap, self.grid)  # (B, W, g, g)
                inputs[m] = grid.flatten(2).transpose(1, 2)  # (B, g*g, W)
                if token_mask is not None:
                    token_mask[m] = torch.ones(x.shape[0], self.grid * self.grid, dtype=torch.bool, device=x.device)
            else:
                inputs[m] = self.encoders[m].pooled(fmap)  # (B, W)
        return self.strategy(inputs, present, token_mask)


def wrap_trainable(strategy_cls, features, hparams: dict[str, Any]) -> nn.Module:
    """Build ``strategy_cls`` on the CNN output widths and wrap it with the CNNs."""
    geometry = {m: {"width": 64, **g} for m, g in features.trainable.items()}
    dims = {m: (geometry[m]["width"] if m in geometry else d) for m, d in features.input_dims().items()}
    strategy = strategy_cls(dims, features.num_classes, **hparams)
    return TrainableFrontEnd(strategy, geometry)
