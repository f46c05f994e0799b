"""Adapting a CLIP model to a dataset's own image-text pairs: both towers are fine-tuned with CLIP's
contrastive loss (Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision", section 2.3 and Figure 3) on the training split's pairs; the validation split's
contrastive loss stops the training early (never the test split), and the weights of the best
validation epoch are kept (epoch 0, the model as given, included: adaptation never leaves a model
worse on the validation pairs than it found it). Seeded: the same pairs and settings give the same
weights on one machine.

Nothing here knows a CLIP family: the family (hf-clip, open_clip) hands over a model with CLIP's
learnable ``logit_scale`` (the log of the temperature's inverse, as both families store it) and its
two embedding functions (:class:`Towers`). Where the weights are kept and which pairs are used:
benchmark/features/adapted_clip.py."""

from __future__ import annotations

import copy
import functools
import hashlib
import math
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Protocol, Sequence

import torch

from benchmark.yamlfile import did_you_mean

MAX_LOGIT_SCALE = 100.0  # CLIP clips the logit scale at 100 (Radford et al. 2021, section 2.5)


@dataclass(frozen=True)
class AdaptSettings:
    """The card's ``adapt:`` option of a CLIP encoder. ``patience``: epochs without a lower validation
    loss before stopping. ``weight_decay`` applies to matrices only (not to gains, biases or the logit
    scale, as CLIP's training does)."""

    epochs: int = 10
    lr: float = 1e-5
    batch_size: int = 32
    patience: int = 2
    weight_decay: float = 0.1
    seed: int = 0

    @classmethod
    def of(cls, option: Any) -> "AdaptSettings | None":
        """The settings an ``adapt`` option gives: None / false -> no adaptation; true -> the defaults;
        a mapping -> those settings (an unknown or ill-typed one raises ValueError naming it)."""
        if option is None or option is False:
            return None
        if option is True:
            return cls()
        if not isinstance(option, dict):
            raise ValueError(f"option 'adapt' must be true or a mapping of settings ({cls.names()}), got {option!r}")
        known = {f.name: f.type for f in fields(cls)}
        values = {}
        for name, value in option.items():
            if name not in known:
                raise ValueError(f"option 'adapt' has no setting {name!r}{did_you_mean(str(name), known)}; "
                                 f"its settings: {cls.names()}")
            want = float if known[name] == "float" else int
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (want is int and value != int(value)):
                raise ValueError(f"option 'adapt': setting {name!r} must be {'a number' if want is float else 'an integer'}, "
                                 f"got {value!r}")
            values[name] = want(value)
        settings = cls(**values)
        for name in ("epochs", "batch_size"):
            if getattr(settings, name) < 1 + (name == "batch_size"):
                raise ValueError(f"option 'adapt': setting {name!r} must be at least {1 + (name == 'batch_size')} "
                                 f"(a contrastive batch needs two pairs), got {getattr(settings, name)}")
        if settings.lr <= 0 or settings.patience < 1 or settings.weight_decay < 0:
            raise ValueError(f"option 'adapt': lr must be > 0, patience >= 1 and weight_decay >= 0, got {option!r}")
        return settings

    @classmethod
    def names(cls) -> str:
        return ", ".join(f.name for f in fields(cls))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def clip_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric contrastive (InfoNCE) loss of a batch of B matching pairs: row i of ``image``
    (B, P) belongs with row i of ``text`` (B, P), every other row of the batch is a negative.
    ``logit_scale``: the log of the scale (as CLIP stores it); the scale is clipped at 100."""
    scale = logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)
    logits = scale * torch.nn.functional.normalize(image, dim=-1) @ torch.nn.functional.normalize(text, dim=-1).T  # (B, B)
    targets = torch.arange(logits.shape[0], device=logits.device)  # (B,)
    return (torch.nn.functional.cross_entropy(logits, targets) + torch.nn.functional.cross_entropy(logits.T, targets)) / 2


@dataclass(frozen=True)
class Pairs:
    """Matching image and text values of one split (images as the column holds them: bytes, paths)."""

    images: Sequence[Any]
    texts: Sequence[str]

    def __len__(self) -> int:
        return len(self.texts)


class Towers(Protocol):
    """What a CLIP family gives the training loop: each tower's projected embedding (B, P), not
    normalised, computed by ``model`` with gradients."""

    def image_embeddings(self, model: torch.nn.Module, images: Sequence[Any]) -> torch.Tensor: ...

    def text_embeddings(self, model: torch.nn.Module, texts: Sequence[str]) -> torch.Tensor: ...


@dataclass
class Adapted:
    """The adapted weights (on the CPU) and how the training went: validation loss per epoch (epoch 0:
    the model as given), the epoch whose weights were kept, and why it stopped."""

    state_dict: dict[str, torch.Tensor]
    validation_losses: list[float]
    train_losses: list[float]
    best_epoch: int
    stop_reason: str


def adapt_clip(model: torch.nn.Module, towers: Towers, train: Pairs, validation: Pairs, settings: AdaptSettings,
               log: Callable[[str], None] = print, device: str | torch.device = "cpu") -> Adapted:
    """Fine-tune ``model`` (changed in place, left in eval mode with the best weights) on ``train``'s pairs;
    one line per epoch goes to ``log``. Batch norm statistics stay frozen (small contrastive batches
    would make them noisy)."""
    if len(train) < 2 or len(validation) < 2:
        raise ValueError(f"adapting CLIP needs at least two image-text pairs in the training and the validation "
                         f"split, got {len(train)} and {len(validation)}")
    model.to(device)
    with torch.random.fork_rng(devices=[]), torch.enable_grad():  # the caller may be encoding under no_grad
        torch.manual_seed(settings.seed)
        shuffle = torch.Generator().manual_seed(settings.seed)
        optimiser = torch.optim.AdamW(_parameter_groups(model, settings.weight_decay), lr=settings.lr)
        best = _validation_loss(model, towers, validation, settings.batch_size)
        losses, train_losses = [best], []
        best_state, best_epoch, stale, reason = _cpu_copy(model), 0, 0, "epochs"
        log(f"adapt CLIP: {len(train)} training pairs, {len(validation)} validation pairs; "
            f"epoch 0 validation loss {best:.4f}")
        for epoch in range(1, settings.epochs + 1):
            started = time.perf_counter()
            train_losses.append(_train_epoch(model, towers, train, settings.batch_size, optimiser, shuffle))
            losses.append(_validation_loss(model, towers, validation, settings.batch_size))
            improved = losses[-1] < best
            if improved:
                best, best_state, best_epoch, stale = losses[-1], _cpu_copy(model), epoch, 0
            else:
                stale += 1
            log(f"adapt CLIP: epoch {epoch}/{settings.epochs} training loss {train_losses[-1]:.4f}, validation loss "
                f"{losses[-1]:.4f}{' (best)' if improved else ''}, {time.perf_counter() - started:.1f}s")
            if stale >= settings.patience:
                reason = "patience"
                break
    model.load_state_dict(best_state)
    model.cpu().eval()
    log(f"adapt CLIP: kept the weights of epoch {best_epoch} (validation loss {best:.4f}; stopped: {reason})")
    return Adapted(best_state, losses, train_losses, best_epoch, reason)


def _parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only: gains, biases and the logit scale are left alone (as in CLIP)."""
    decay, rest = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 and "logit_scale" not in name else rest).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def _cpu_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _train_mode(model: torch.nn.Module) -> None:
    """Training mode with every batch norm layer kept in eval mode (its running statistics frozen)."""
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()


def _batch_loss(model, towers: Towers, pairs: Pairs, rows: Sequence[int]) -> torch.Tensor:
    image = towers.image_embeddings(model, [pairs.images[i] for i in rows])  # (B, P)
    text = towers.text_embeddings(model, [pairs.texts[i] for i in rows])  # (B, P)
    return clip_loss(image, text, model.logit_scale)


def _train_epoch(model, towers: Towers, pairs: Pairs, batch_size: int, optimiser, shuffle: torch.Generator) -> float:
    """One pass over the pairs in a shuffled order; the mean batch loss. A last batch of one pair
    (no negative to learn from) is left out."""
    _train_mode(model)
    order = torch.randperm(len(pairs), generator=shuffle).tolist()
    total, count = 0.0, 0
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        if len(rows) < 2:
            continue
        loss = _batch_loss(model, towers, pairs, rows)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(MAX_LOGIT_SCALE))
        total, count = total + loss.item() * len(rows), count + len(rows)
    return total / max(count, 1)


@torch.no_grad()
def _validation_loss(model, towers: Towers, pairs: Pairs, batch_size: int) -> float:
    """The contrastive loss over the pairs in their order, in batches of ``batch_size`` (a last batch of
    one pair joins the previous one), weighted by batch size."""
    model.eval()
    starts = list(range(0, len(pairs), batch_size))
    if len(starts) > 1 and len(pairs) - starts[-1] < 2:
        starts.pop()
    total = 0.0
    for k, start in enumerate(starts):
        stop = starts[k + 1] if k + 1 < len(starts) else len(pairs)
        total += float(_batch_loss(model, towers, pairs, range(start, stop))) * (stop - start)
    return total / len(pairs)


def trainable_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of a (shared, frozen) model to adapt, every parameter trainable."""
    clone = copy.deepcopy(model)
    for parameter in clone.parameters():
        parameter.requires_grad_(True)
    return clone


def adaptation_code_version() -> str:
    """A digest of this module's source: the loss and the loop decide the adapted weights, so any
    change to them adapts again (part of the weights' key and of an adapted encoder's version)."""
    return _source_digest(__file__)


@functools.lru_cache(maxsize=None)
def _source_digest(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()[:16]
