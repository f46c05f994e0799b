"""The one training loop shared by every strategy.

Features live as tensors on the training device; batches are index slices (no DataLoader).
Random modality dropout is applied in training only."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from benchmark.features.tensors import SplitTensors
from benchmark.train.batching import model_inputs, random_presence
from benchmark.train.device import synchronize


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    modality_dropout: float = 0.3
    seed: int = 0
    device: str = "cpu"


@dataclass
class TrainStats:
    epochs_run: int = 0
    epoch_seconds: list[float] = field(default_factory=list)
    train_samples: int = 0
    train_seconds: float = 0.0
    final_loss: float = float("nan")

    @property
    def train_samples_per_s(self) -> float:
        return self.train_samples / self.train_seconds if self.train_seconds > 0 else float("nan")

    @property
    def seconds_per_epoch(self) -> float:
        return sum(self.epoch_seconds) / len(self.epoch_seconds) if self.epoch_seconds else float("nan")


EpochCallback = Callable[[int, nn.Module], None]  # (epoch, model) -> None; may raise to stop (e.g. pruning)


def train(model: nn.Module, train_split: SplitTensors, modalities: list[str], config: TrainConfig,
          on_epoch: EpochCallback | None = None) -> TrainStats:
    """Train ``model`` in place with AdamW and cross-entropy. ``train_split`` must already be on device."""
    device = torch.device(config.device)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    tokens = model.consumes_tokens
    n = len(train_split)
    stats = TrainStats()
    for epoch in range(config.epochs):
        model.train()
        synchronize(device)
        started = time.perf_counter()
        order = torch.randperm(n, generator=generator).to(device)
        # Modality dropout for the whole epoch in one draw; batches take slices of it.
        presence = random_presence(n, len(modalities), config.modality_dropout, generator, device)  # (N, M)
        batch_losses = []
        for start in range(0, n, config.batch_size):
            index = order[start : start + config.batch_size]  # (b,)
            inputs, token_mask = model_inputs(train_split, modalities, index, tokens)
            present = presence[start : start + config.batch_size]  # (b, M)
            loss = nn.functional.cross_entropy(model(inputs, present, token_mask), train_split.labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            batch_losses.append(loss.detach())
        synchronize(device)
        seconds = time.perf_counter() - started
        sizes = torch.tensor([min(config.batch_size, n - s) for s in range(0, n, config.batch_size)], device=device)
        epoch_loss = float((torch.stack(batch_losses) * sizes).sum()) / n
        if not math.isfinite(epoch_loss):
            raise NonFiniteLoss(f"training loss is {epoch_loss} at epoch {epoch + 1} (lr={config.lr})")
        stats.epochs_run += 1
        stats.final_loss = epoch_loss
        if epoch > 0 or config.epochs == 1:  # the first epoch is warm-up when there are several
            stats.epoch_seconds.append(seconds)
            stats.train_samples += n
            stats.train_seconds += seconds
        if on_epoch is not None:
            on_epoch(epoch, model)
    return stats
