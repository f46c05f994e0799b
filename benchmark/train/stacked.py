"""Several models of one shape trained as one stacked computation.

The seeds of a cell share their hyperparameters and shapes, so their weights are stacked along a
new leading dimension (``torch.func.stack_module_state``) and one vectorised forward
(``torch.func.vmap`` over ``torch.func.functional_call``) runs them all in each step. Each model
keeps what it would have had alone: its own initialisation, its own generator (data order and
modality-dropout draws, ``loop.epoch_draws`` as ``loop.train`` makes them), its own learning rate,
weight decay, gradient clipping, early stopping and best weights (``loop.RunBook``), in the epoch
skeleton ``loop.train`` runs too (``loop.run_epochs``). The update is
AdamW written over the stacked tensors with a per-model rate, the arithmetic of
``torch.optim.AdamW``. A model that stops leaves the stack; the others go on.

What differs from training one by one: floating-point rounding (batched matrix products), and
dropout layers inside a model draw their masks from the global generator per stacked call
(``randomness="different"``), so with dropout > 0 the masks are not the ones a lone run draws.

``train_together`` is the entry point: it stacks when it can and otherwise trains the models one by
one, saying why (``stacking_problem``)."""

from __future__ import annotations

import contextlib
import copy
from typing import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

from benchmark.features.tensors import SplitTensors
from benchmark.train.batching import model_inputs
from benchmark.train.device import is_cuda
from benchmark.train.evaluation import EVAL_BATCH, score_and_loss
from benchmark.train.model import FusionModel
from benchmark.train.loop import RunBook, TrainConfig, TrainStats, epoch_draws, run_epochs, task_of, train
from benchmark.train.precision import autocast
from benchmark.train.tasks import Task

BETAS = (0.9, 0.999)  # torch.optim.AdamW's defaults, as loop.train uses them
EPS = 1e-8

StackedEpochCallback = Callable[[int, int, float], None]  # (model index, epoch index, validation score)


class _WithAux(nn.Module):
    """Calls ``forward_with_aux`` through ``forward`` (functional_call calls ``forward``) and
    returns tensors only: (logits, aux logits, aux rows); the aux weights are plain floats kept
    aside in ``weights`` (the same for every stacked model: they share hyperparameters)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.weights: list[float] = []

    def forward(self, inputs, present, token_mask):
        logits, auxiliary = self.model.forward_with_aux(inputs, present, token_mask)
        self.weights = [float(a.weight) for a in auxiliary]
        return logits, tuple(a.logits for a in auxiliary), tuple(a.rows for a in auxiliary)


def _shared_settings(configs: Sequence[TrainConfig]) -> str | None:
    """Settings every stacked model must share (one batch layout, one epoch loop)."""
    for name in ("batch_size", "epochs", "device", "amp", "metric", "task", "regression_loss"):
        if len({getattr(c, name) for c in configs}) > 1:
            return f"their {name} differs"
    if configs[0].amp == "fp16" and is_cuda(configs[0].device):
        return "fp16 mixed precision needs a gradient scaler per model"
    return None


def stacking_problem(models: Sequence[nn.Module], configs: Sequence[TrainConfig], train_split: SplitTensors,
                     modalities: list[str]) -> str | None:
    """Why these models cannot be trained stacked, or None when they can: one model, different
    shapes or settings, or a strategy whose forward does not vectorise (tried on two rows)."""
    if len(models) < 2:
        return "a single model"
    problem = _shared_settings(configs)
    if problem:
        return problem
    if any(isinstance(m, FusionModel) and m.pretrained for m in models):
        return "a fine-tuned encoder trains at its own rate (one optimizer group per model part)"
    shapes = [[(k, tuple(v.shape)) for k, v in m.state_dict().items()] for m in models]
    if any(s != shapes[0] for s in shapes[1:]):
        return "their parameter shapes differ"
    try:
        device = torch.device(configs[0].device)
        probe = [copy.deepcopy(m).to(device) for m in models[:2]]
        params, buffers = stack_module_state(probe)
        index = torch.arange(min(2, len(train_split)))  # (2,)
        inputs, mask = model_inputs(train_split, modalities, index, probe[0].consumes_tokens, device=device)
        present = torch.ones(len(index), len(modalities), dtype=torch.bool, device=device)  # (2, M)
        call = _vectorised(_WithAux(copy.deepcopy(probe[0])).train(), mask is not None, inputs_stacked=False)
        logits, _, _ = call(params, buffers, inputs, present, mask)  # (2 models, 2, C)
        logits.float().sum().backward()
    except Exception as exc:  # noqa: BLE001 - any failure means: train one by one
        return f"its forward does not vectorise ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
    return None


def _vectorised(wrapper: _WithAux, with_mask: bool, inputs_stacked: bool):
    """vmap of the wrapper's forward over stacked (params, buffers), and over the inputs too when
    ``inputs_stacked`` (training: each model its own batch) or shared (evaluation)."""
    def call(params, buffers, inputs, present, mask):
        named = {f"model.{k}": v for k, v in {**params, **buffers}.items()}  # the wrapper's names
        return functional_call(wrapper, named, (inputs, present, mask))

    data = 0 if inputs_stacked else None
    batched = vmap(call, in_dims=(0, 0, data, data, data if with_mask else None), randomness="different")

    def run(*args):
        with _attention_kernels(args[2]):
            return batched(*args)

    return run


def _attention_kernels(inputs: dict[str, torch.Tensor]):
    """On CPU, fused attention through its math path: vmap has no batching rule for the CPU flash
    kernel and would loop over every row (CUDA's flash and memory-efficient kernels have one)."""
    on_cuda = any(x.is_cuda for x in inputs.values())
    return contextlib.nullcontext() if on_cuda else sdpa_kernel([SDPBackend.MATH])


class _StackedAdamW:
    """AdamW over stacked tensors (leading dimension: the model) with a learning rate and weight
    decay per model: the arithmetic of ``torch.optim.AdamW`` (decoupled decay, bias correction)."""

    def __init__(self, params: dict[str, torch.Tensor]) -> None:
        self.state = {k: (torch.zeros_like(p), torch.zeros_like(p)) for k, p in params.items()}
        self.steps = {k: 0 for k in params}

    @torch.no_grad()
    def step(self, params: dict[str, torch.Tensor], lr: torch.Tensor, weight_decay: torch.Tensor) -> None:
        """lr, weight_decay: (S,) on the parameters' device."""
        beta1, beta2 = BETAS
        for name, p in params.items():
            if p.grad is None:
                continue  # unused this step: AdamW skips it too
            shape = (-1,) + (1,) * (p.dim() - 1)
            rate, decay = lr.view(shape), weight_decay.view(shape)  # (S, 1, ...)
            exp_avg, exp_avg_sq = self.state[name]
            self.steps[name] += 1
            step = self.steps[name]
            p.mul_(1 - rate * decay)
            exp_avg.lerp_(p.grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            denom = (exp_avg_sq.sqrt() / (1 - beta2**step) ** 0.5).add_(EPS)
            p.sub_(rate / (1 - beta1**step) * exp_avg / denom)

    def keep(self, rows: torch.Tensor) -> None:
        """Drop the state of models that left the stack. rows: (S_kept,) indices."""
        self.state = {k: (m[rows], v[rows]) for k, (m, v) in self.state.items()}


def _clip_per_model(params: dict[str, torch.Tensor], clip_norm: torch.Tensor) -> None:
    """Clip each model's gradients to its global norm (``nn.utils.clip_grad_norm_`` per model).
    clip_norm: (S,); models with clip_norm <= 0 are not clipped."""
    grads = [p.grad for p in params.values() if p.grad is not None]
    if not grads:
        return
    norms = torch.stack([g.flatten(1).pow(2).sum(1) for g in grads]).sum(0).sqrt()  # (S,)
    coef = torch.where(clip_norm > 0, (clip_norm / (norms + 1e-6)).clamp(max=1.0), torch.ones_like(norms))  # (S,)
    for g in grads:
        g.mul_(coef.view((-1,) + (1,) * (g.dim() - 1)))


def _stacked_loss(logits, aux_logits, aux_rows, weights: list[float], labels: torch.Tensor, task: Task) -> torch.Tensor:
    """Per-model training loss, as ``loop.training_loss`` computes it for each model alone, with the
    same per-row loss of the task (:meth:`Task.row_losses`).
    logits: (S, b, C); labels: (S, b) or (S, b, L) -> (S,)"""
    s, b, c = logits.shape
    flat_labels = labels.reshape((s * b,) + tuple(labels.shape[2:]))  # (S*b,) or (S*b, L)
    loss = task.row_losses(logits.reshape(s * b, c), flat_labels).view(s, b).mean(1)  # (S,)
    for head, rows, weight in zip(aux_logits, aux_rows, weights):
        if weight <= 0:
            continue
        per_row = task.row_losses(head.reshape(s * b, c), flat_labels).view(s, b)  # (S, b)
        count = rows.sum(1)  # (S,)
        aux = (per_row * rows).sum(1) / count.clamp(min=1)  # (S,): mean over the head's rows
        loss = loss + weight * torch.where(count > 0, aux, torch.zeros_like(aux))
    return loss


def _validation_scores(call, params, buffers, split: SplitTensors, modalities: list[str], tokens: bool,
                       metric: str, device, task: Task) -> list[tuple[float, float]]:
    """Each stacked model's (score, loss) on ``split`` with every modality present, as
    ``evaluation.validation_scores`` gives it for a model alone."""
    present_all = split.available.to(device)  # (N, M): every modality the data holds
    out = []
    with torch.no_grad():
        for start in range(0, len(split), EVAL_BATCH):
            index = torch.arange(start, min(len(split), start + EVAL_BATCH))  # (b,)
            inputs, mask = model_inputs(split, modalities, index, tokens, device=device)
            logits, _, _ = call(params, buffers, inputs, present_all[start : start + len(index)], mask)  # (S, b, C)
            out.append(logits.float())
    logits = torch.cat(out, dim=1)  # (S, N, C)
    return [score_and_loss(model_logits, split.labels, metric, task) for model_logits in logits]


def train_stacked(models: Sequence[nn.Module], train_split: SplitTensors, modalities: list[str],
                  configs: Sequence[TrainConfig], val_split: SplitTensors | None = None,
                  on_epoch: StackedEpochCallback | None = None) -> list[TrainStats]:
    """Train ``models`` (same class and shapes; ``configs`` share batch size, cap, device) in place,
    stacked; each gets the protocol of ``loop.train`` with its own config. -> stats per model."""
    device = torch.device(configs[0].device)
    count = len(models)
    # Dropout layers inside the models draw from the global generator, for the whole stack at once
    # (vmap's randomness="different"): seeded by the first model's seed, they are the same for the
    # same stack, but not the masks a lone run of each model draws.
    torch.manual_seed(configs[0].seed)
    for model in models:
        model.to(device).train()
    wrapper = _WithAux(copy.deepcopy(models[0]))  # its own weights are never used: functional_call swaps them
    tokens = models[0].consumes_tokens
    n, batch_size = len(train_split), configs[0].batch_size
    steps_per_epoch = -(-n // batch_size)
    books = [RunBook(c, n, steps_per_epoch) for c in configs]
    generators = [torch.Generator().manual_seed(c.seed) for c in configs]
    params, buffers = stack_module_state(list(models))  # name -> (S, ...)
    trainable = {k: p for k, p in params.items() if p.requires_grad}
    optimizer = _StackedAdamW(trainable)
    best: list[dict[str, torch.Tensor] | None] = [None] * count
    weight_decay = torch.tensor([c.weight_decay for c in configs], device=device)  # (S,)
    clip_norm = torch.tensor([c.clip_norm for c in configs], device=device)  # (S,)
    labels_all = train_split.labels
    task = task_of(configs[0])  # shared (stacking_problem)
    train_call = _vectorised(wrapper, tokens, inputs_stacked=True)  # each model its own batch
    eval_call = _vectorised(wrapper, tokens, inputs_stacked=False)  # one batch for every model

    def train_epoch(epoch: int, active: list[int]) -> list[float]:
        """One epoch of the models still in the stack (``active``: their indices, in stack order)."""
        wrapper.train()
        draws = [epoch_draws(train_split, modalities, configs[i], generators[i], device) for i in active]
        orders = [order for order, _ in draws]  # S x (N,)
        presence = torch.stack([model_presence for _, model_presence in draws])  # (S, N, M)
        loss_sum = torch.zeros(len(active), device=device)  # (S,) running sums of row-weighted losses
        for start in range(0, n, batch_size):
            index = torch.stack([order[start : start + batch_size] for order in orders])  # (S, b)
            flat = index.reshape(-1)  # (S*b,)
            inputs, mask = model_inputs(train_split, modalities, flat, tokens, device=device)
            inputs = {m: x.view(index.shape + x.shape[1:]) for m, x in inputs.items()}  # m -> (S, b, ...)
            if mask is not None:
                mask = {m: x.view(index.shape + x.shape[1:]) for m, x in mask.items()}  # m -> (S, b, T)
            labels = labels_all[flat].to(device, non_blocking=True)  # (S*b,) or (S*b, L)
            labels = labels.view(index.shape + labels.shape[1:])  # (S, b) or (S, b, L)
            with autocast(configs[0].amp, device):
                logits, aux_logits, aux_rows = train_call(params, buffers, inputs,
                                                          presence[:, start : start + batch_size], mask)  # (S, b, C)
                loss = _stacked_loss(logits, aux_logits, aux_rows, wrapper.weights, labels, task)  # (S,)
            for p in trainable.values():
                p.grad = None
            loss.sum().backward()
            _clip_per_model(trainable, clip_norm[active])
            rates = torch.tensor([books[i].rate.value for i in active], device=device)  # (S,)
            optimizer.step(trainable, rates, weight_decay[active])
            for i in active:
                books[i].rate.after_step()
            loss_sum += loss.detach().float() * index.shape[1]
        return [float(loss_sum[row]) / n for row in range(len(active))]  # row-weighted means

    def validate(active: list[int]) -> list[tuple[float, float]]:
        wrapper.eval()
        return _validation_scores(eval_call, params, buffers, val_split, modalities, tokens, configs[0].metric,
                                  device, task)

    def keep_best(i: int, row: int) -> None:
        best[i] = {k: v[row].detach().clone() for k, v in {**params, **buffers}.items()}

    def leave(stopped: list[int], active: list[int]) -> None:
        """Models that stopped leave the stack (their best weights written back)."""
        nonlocal params, buffers, trainable
        _write_back(models, [(row, active[row]) for row in stopped], params, buffers, best)
        keep = torch.tensor([row for row in range(len(active)) if row not in stopped], dtype=torch.long, device=device)
        params = {k: v[keep].detach().requires_grad_(v.requires_grad) for k, v in params.items()}
        buffers = {k: v[keep] for k, v in buffers.items()}
        trainable = {k: p for k, p in params.items() if p.requires_grad}
        optimizer.keep(keep)

    active = run_epochs(books, device, train_epoch, None if val_split is None else validate, keep_best, on_epoch,
                        leave)
    _write_back(models, list(enumerate(active)), params, buffers, best)
    for model, book in zip(models, books):
        model.eval()
        book.stats.stacked_with = count
    return [book.stats for book in books]


def _write_back(models, rows: list[tuple[int, int]], params, buffers, best) -> None:
    """Load into each module its best weights (or its last ones without validation).
    rows: (row in the stack, index of the model)."""
    stacked = {**params, **buffers}
    for row, i in rows:
        weights = best[i] if best[i] is not None else {k: v[row].detach() for k, v in stacked.items()}
        with torch.no_grad():
            for name, tensor in list(models[i].named_parameters()) + list(models[i].named_buffers()):
                if name in weights:
                    tensor.copy_(weights[name])


def train_together(models: Sequence[nn.Module], train_split: SplitTensors, modalities: list[str],
                   configs: Sequence[TrainConfig], val_split: SplitTensors | None = None,
                   on_epoch: StackedEpochCallback | None = None, stack: bool = True,
                   log: Callable[[str], None] = lambda _: None) -> list[TrainStats]:
    """Train ``models`` with their ``configs``: stacked when possible (and ``stack``), else one by
    one with ``loop.train``, logging why. -> stats per model."""
    problem = stacking_problem(models, configs, train_split, modalities) if stack else "stacking is off"
    if problem is None:
        return train_stacked(models, train_split, modalities, configs, val_split, on_epoch)
    if len(models) > 1:
        log(f"training {len(models)} models one by one: {problem}")
    stats = []
    for i, (model, config) in enumerate(zip(models, configs)):
        callback = (lambda epoch, score, i=i: on_epoch(i, epoch, score)) if on_epoch is not None else None
        stats.append(train(model, train_split, modalities, config, val_split, callback))
    return stats
