"""The one training loop shared by every strategy.

Features live as tensors (in their cached dtype) on the features' device; batches are index
slices converted to float32 on the training device (no DataLoader). Random modality dropout is
applied in training only.

The protocol (docs/protocol.md, "Training protocol"): AdamW with a linear learning-rate warm-up over
the first epoch, then the rate is halved whenever the validation score has not improved for
``lr_patience`` epochs (an epoch improves when its score beats the best, or ties it with a
lower validation loss); gradients are clipped to a global norm of ``clip_norm``; training stops
when the validation score has not improved for ``wait_epochs(best epoch)`` epochs, but never
before ``min_epochs`` (``plateau``), or at the epoch cap (``cap``), and the weights of the best
validation epoch are restored. The wait grows with the best epoch (``patience_ratio``), between
``lr_patience + 2`` (the rate is halved once and the lower rate gets two epochs) and
``patience``: a model whose best epoch was 4 stops at epoch 8, not at 10 + patience, and
a model still finding better epochs at 20 gets the whole patience.

``train`` runs one model. ``benchmark/train/stacked.py`` runs several models of one shape (the
seeds of a cell) as one stacked computation with the same protocol; both run the one epoch
skeleton (``run_epochs``), draw each run's data order and modality dropout with ``epoch_draws``,
and keep their per-run bookkeeping in ``RunBook`` and their rate in ``LearningRate``, so the rules
live here once."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from benchmark.features.tensors import SplitTensors
from benchmark.vocabulary import STOP_CAP, STOP_PLATEAU, higher_is_better
from benchmark.train.batching import model_inputs, presence_rates, random_presence
from benchmark.train.device import is_cuda, synchronize
from benchmark.train.evaluation import validation_scores
from benchmark.train.model import FusionModel
from benchmark.train.precision import autocast
from benchmark.train.tasks import MULTICLASS, Task


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20  # the cap; early stopping usually ends training before it
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    modality_dropout: float | tuple[tuple[str, float], ...] = 0.3  # one rate, or a rate per modality (sorted)
    seed: int = 0
    device: str = "cpu"
    patience: int = 5  # the longest wait: epochs without a better validation score before stopping
    min_epochs: int = 10  # neither early stopping nor the rate's decay fires before this epoch
    # The wait after the best epoch b: ceil(patience_ratio * b), at least lr_patience + 2, at most
    # patience (0: always patience, the fixed rule of protocol 2).
    patience_ratio: float = 0.0
    lr_patience: int = 2  # epochs without a better validation score before the rate is halved
    lr_decay: float = 0.5
    warmup_epochs: float = 1.0  # linear warm-up from lr / 10 over this many epochs of steps
    clip_norm: float = 1.0  # global gradient-norm clipping
    min_delta: float = 1e-4  # a validation score must beat the best by more than this (ties: the loss decides)
    metric: str = "accuracy"  # the validation score: the card's ranking metric (lower is better for mae, rmse)
    task: str = "multiclass"  # the card's task: multiclass | binary | multilabel | regression (sets the loss)
    regression_loss: str = "mse"  # regression: "mse" or "l1"
    amp: str = "off"  # "bf16" or "fp16" autocast on CUDA (fp16 with a gradient scaler); off CUDA always "off"
    # The rate of fine-tuned pretrained encoders' parameters (benchmark/train/finetuned_encoders.py), under
    # the same warm-up and decay as ``lr``; None: they train at ``lr`` (a model without any: unused)
    encoder_lr: float | None = None


@dataclass
class TrainStats:
    epochs_run: int = 0
    best_epoch: int = 0  # 1-based; 0 when no validation split was given
    best_score: float = float("nan")
    best_loss: float = float("nan")  # validation loss at the best epoch
    stop_reason: str = STOP_CAP
    epoch_seconds: list[float] = field(default_factory=list)
    train_samples: int = 0
    train_seconds: float = 0.0
    final_loss: float = float("nan")
    train_loss: list[float] = field(default_factory=list)  # per epoch
    val_score: list[float] = field(default_factory=list)  # per epoch
    lr: list[float] = field(default_factory=list)  # per epoch, the rate at its end
    stacked_with: int = 1  # models trained in the same stacked computation (1: alone)

    @property
    def train_samples_per_s(self) -> float:
        return self.train_samples / self.train_seconds if self.train_seconds > 0 else float("nan")

    @property
    def seconds_per_epoch(self) -> float:
        return sum(self.epoch_seconds) / len(self.epoch_seconds) if self.epoch_seconds else float("nan")

    @property
    def converged(self) -> bool:
        """Stopped on a validation plateau. A run stopped by the cap improved within its last
        ``patience`` epochs (else the plateau rule would have fired): it was still improving."""
        return self.stop_reason == STOP_PLATEAU


EpochCallback = Callable[[int, float], None]  # (epoch index, validation score) -> None; may raise (pruning)
RunEpochCallback = Callable[[int, int, float], None]  # (run index, epoch index, validation score) -> None


def wait_epochs(config: TrainConfig, best_epoch: int) -> int:
    """Epochs without a better validation score after 1-based ``best_epoch`` before training stops:
    ``config.patience`` under the fixed rule (``patience_ratio`` 0); otherwise a wait that grows with
    the best epoch, ceil(ratio x best epoch), never below ``lr_patience + 2`` (a plateau is called only
    after the rate was halved and the lower rate had two epochs) nor above ``patience``."""
    if config.patience_ratio <= 0:
        return config.patience
    floor = min(config.patience, config.lr_patience + 2)
    return min(config.patience, max(floor, math.ceil(config.patience_ratio * best_epoch)))


def adamw(parameters, config: TrainConfig) -> torch.optim.AdamW:
    """The protocol's optimizer: AdamW with the run's rate and weight decay, in PyTorch's fused
    implementation (one kernel for every parameter instead of a Python loop over them: 3.4 against
    4.4 ms per step for a 1664-256-9 MLP on one CPU thread, 2026-12; the same arithmetic up to
    rounding)."""
    return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay, fused=True)


def parameter_groups(model: nn.Module, config: TrainConfig):
    """What the optimizer trains: a FusionModel's groups (its fine-tuned encoders at
    ``encoder_lr / lr`` of the rate, FusionModel.parameter_groups), else every parameter."""
    if isinstance(model, FusionModel):
        scale = 1.0 if config.encoder_lr is None else config.encoder_lr / config.lr
        return model.parameter_groups(scale)
    return [{"params": list(model.parameters()), "lr_scale": 1.0}]


def task_of(config: TrainConfig) -> Task:
    """The task whose loss ``config`` trains with."""
    return Task(config.task, config.regression_loss)


def training_loss(model: nn.Module, inputs, present: torch.Tensor, token_mask, labels: torch.Tensor,
                  task: Task = MULTICLASS) -> torch.Tensor:
    """The task's loss (:meth:`Task.row_losses`: cross-entropy, BCE with logits, MSE or L1) of the
    fused outputs plus the weighted loss of any auxiliary classifiers the strategy returns (e.g.
    CentralNet's per-modality heads), each over its rows."""
    logits, auxiliary = model.forward_with_aux(inputs, present, token_mask)  # (b, C), [AuxiliaryLogits]
    loss = task.loss(logits, labels)
    for aux in auxiliary:
        if aux.weight > 0 and bool(aux.rows.any()):
            loss = loss + aux.weight * task.loss(aux.logits[aux.rows], labels[aux.rows])
    return loss


class LearningRate:
    """The rate of one run: linear warm-up over the first steps, then halving on a validation
    plateau. It holds the value; the caller applies it to its optimizer."""

    def __init__(self, config: TrainConfig, steps_per_epoch: int) -> None:
        self.config = config
        self.warmup_steps = max(1, int(round(config.warmup_epochs * steps_per_epoch)))
        self.base = config.lr
        self.step_count = 0
        self.stale = 0
        self.value = self.base * 0.1 if config.warmup_epochs > 0 else self.base

    def after_step(self) -> None:
        self.step_count += 1
        if self.config.warmup_epochs > 0 and self.step_count <= self.warmup_steps:
            self.value = self.base * (0.1 + 0.9 * self.step_count / self.warmup_steps)

    def after_epoch(self, epoch: int, improved: bool) -> None:
        """After 1-based ``epoch``; the rate is kept until ``min_epochs`` (a slow start is no plateau)."""
        self.stale = 0 if improved else self.stale + 1
        if self.stale >= self.config.lr_patience and epoch >= self.config.min_epochs:
            self.base *= self.config.lr_decay
            self.value = self.base
            self.stale = 0


class RunBook:
    """The bookkeeping of one training run, epoch by epoch: losses, timings, validation scores,
    the rate, the best epoch and when to stop. Shared by the single and the stacked loop."""

    def __init__(self, config: TrainConfig, n: int, steps_per_epoch: int) -> None:
        self.config, self.n = config, n
        self.rate = LearningRate(config, steps_per_epoch)
        self.stats = TrainStats()
        self.since_best = 0
        self.stopped = False

    def end_epoch(self, epoch: int, loss: float, seconds: float) -> None:
        """Record 0-based ``epoch``'s mean training loss and its time (the first epoch is warm-up
        when there are several, so it is left out of the timings)."""
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"training loss is {loss} at epoch {epoch + 1} (lr={self.config.lr})")
        stats = self.stats
        stats.epochs_run += 1
        stats.final_loss = loss
        stats.train_loss.append(loss)
        if epoch > 0 or self.config.epochs == 1:
            stats.epoch_seconds.append(seconds)
            stats.train_samples += self.n
            stats.train_seconds += seconds

    def no_validation(self) -> None:
        self.stats.lr.append(self.rate.value)

    def validated(self, epoch: int, score: float, loss: float) -> bool:
        """Record 0-based ``epoch``'s validation score and loss; update the rate and the stop rule.
        -> whether this epoch is the new best (the caller keeps its weights)."""
        stats, config = self.stats, self.config
        stats.val_score.append(score)
        sign = 1.0 if higher_is_better(config.metric) else -1.0  # mae, rmse: lower is better
        improved = stats.best_epoch == 0 or sign * score > sign * stats.best_score + config.min_delta or (
            sign * score >= sign * stats.best_score - config.min_delta and loss < stats.best_loss - config.min_delta)
        if improved:
            stats.best_score, stats.best_loss, stats.best_epoch, self.since_best = score, loss, epoch + 1, 0
        else:
            self.since_best += 1
        self.rate.after_epoch(epoch + 1, improved)
        stats.lr.append(self.rate.value)
        if self.since_best >= wait_epochs(config, stats.best_epoch) and epoch + 1 >= config.min_epochs:
            stats.stop_reason = STOP_PLATEAU
            self.stopped = True
        return improved


def epoch_draws(split: SplitTensors, modalities: list[str], config: TrainConfig, generator: torch.Generator,
                device) -> tuple[torch.Tensor, torch.Tensor]:
    """One run's random draws for one epoch, from its own generator and in this order: the row order,
    then the modality dropout of the whole epoch in one draw (batches take slices of it). Modalities
    absent from the data (``split.available``, in the epoch's row order) are never present.
    -> (order (N,), presence bool (N, M) on ``device``)"""
    n = len(split)
    order = torch.randperm(n, generator=generator)  # (N,)
    available = split.available[order.to(split.available.device)]  # (N, M)
    rates = presence_rates(config.modality_dropout, modalities)  # a float, or (M,) per modality
    return order, random_presence(n, len(modalities), rates, generator, device, available)  # (N, M)


def run_epochs(books: list[RunBook], device, train_epoch: Callable[[int, list[int]], list[float]],
               validate: Callable[[list[int]], list[tuple[float, float]]] | None,
               keep_best: Callable[[int, int], None], on_epoch: RunEpochCallback | None = None,
               leave: Callable[[list[int], list[int]], None] | None = None) -> list[int]:
    """The epoch skeleton of the protocol, for one run (``train``) or a stack of runs
    (``stacked.train_stacked``). Each epoch: ``train_epoch(epoch, active)`` trains the active runs
    (indices into ``books``) and returns each one's row-weighted mean training loss, timed as the
    epoch; without ``validate`` that is all. With it: ``validate(active)`` gives each active run's
    (validation score, validation loss); a run's new best epoch calls ``keep_best(run, row)`` (row:
    its place among the active runs), then ``on_epoch(run, epoch, score)``; runs whose stop rule
    fired leave, through ``leave(their rows, active)``, and the loop ends when none is left or at
    the epoch cap. -> the runs still active at the end."""
    active = list(range(len(books)))
    for epoch in range(books[0].config.epochs):
        synchronize(device)
        started = time.perf_counter()
        losses = train_epoch(epoch, active)
        synchronize(device)
        seconds = time.perf_counter() - started
        for i, loss in zip(active, losses):
            books[i].end_epoch(epoch, loss, seconds)
        if validate is None:
            for i in active:
                books[i].no_validation()
            continue
        for row, (i, (score, loss)) in enumerate(zip(active, validate(active))):
            if books[i].validated(epoch, score, loss):
                keep_best(i, row)
            if on_epoch is not None:
                on_epoch(i, epoch, score)
        stopped = [row for row, i in enumerate(active) if books[i].stopped]
        if stopped:
            if leave is not None:
                leave(stopped, active)
            active = [i for row, i in enumerate(active) if row not in stopped]
        if not active:
            break
    return active


def train(model: nn.Module, train_split: SplitTensors, modalities: list[str], config: TrainConfig,
          val_split: SplitTensors | None = None, on_epoch: EpochCallback | None = None) -> TrainStats:
    """Train ``model`` in place. With ``val_split``: early stopping on the validation score and
    the best epoch's weights restored; without: ``config.epochs`` epochs and the last weights."""
    device = torch.device(config.device)
    # Dropout layers inside the model draw their masks from the global generator: seeded from this
    # run's own seed, they do not depend on what trained before it in the process (which worker ran
    # it, in what order, beside which other runs).
    torch.manual_seed(config.seed)
    model.to(device).train()
    optimizer = adamw(parameter_groups(model, config), config)
    scaler = torch.amp.GradScaler("cuda") if config.amp == "fp16" and is_cuda(device) else None
    generator = torch.Generator().manual_seed(config.seed)
    tokens = model.consumes_tokens
    n = len(train_split)
    book = RunBook(config, n, -(-n // config.batch_size))
    parameters = [p for p in model.parameters() if p.requires_grad]
    task = task_of(config)
    best_state: list[dict[str, torch.Tensor]] = []  # the best epoch's weights, once there is one

    def train_epoch(epoch: int, active: list[int]) -> list[float]:
        model.train()
        order, presence = epoch_draws(train_split, modalities, config, generator, device)  # (N,), (N, M)
        loss_sum = torch.zeros((), device=device)  # a running sum: a list of per-step tensors grows the heap
        for start in range(0, n, config.batch_size):
            index = order[start : start + config.batch_size]  # (b,)
            inputs, token_mask = model_inputs(train_split, modalities, index, tokens, device=device)
            present = presence[start : start + config.batch_size]  # (b, M)
            labels = train_split.labels[index].to(device, non_blocking=True)  # (b,)
            for group in optimizer.param_groups:
                group["lr"] = book.rate.value * group["lr_scale"]  # fine-tuned encoders: encoder_lr / lr of it
            with autocast(config.amp, device):
                loss = training_loss(model, inputs, present, token_mask, labels, task)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if config.clip_norm > 0:
                nn.utils.clip_grad_norm_(parameters, config.clip_norm)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            book.rate.after_step()
            loss_sum += loss.detach().float() * len(index)
        return [float(loss_sum) / n]  # row-weighted mean

    def validate(active: list[int]) -> list[tuple[float, float]]:
        return [validation_scores(model, val_split, modalities, config.metric, task)]

    def keep_best(run: int, row: int) -> None:
        best_state[:] = [copy.deepcopy(model.state_dict())]

    run_epochs([book], device, train_epoch, None if val_split is None else validate, keep_best,
               None if on_epoch is None else lambda run, epoch, score: on_epoch(epoch, score))
    if best_state:
        model.load_state_dict(best_state[0])
    model.eval()
    return book.stats
