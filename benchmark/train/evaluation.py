"""Evaluation: full input, every non-empty subset of modalities, a test-time missing-rate
curve with its robustness score, and inference cost."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.metrics import f1_score

from benchmark.train.batching import model_inputs, random_presence, subset_presence
from benchmark.features.tensors import SplitTensors
from benchmark.train.device import synchronize

MISSING_RATES = tuple(round(0.1 * i, 1) for i in range(10))  # 0.0 .. 0.9
EVAL_BATCH = 256


@dataclass
class Evaluation:
    accuracy: float
    macro_f1: float
    subset_accuracy: dict[str, float] = field(default_factory=dict)  # "image+text" -> acc
    missing_curve: dict[float, float] = field(default_factory=dict)  # rate -> acc
    robustness: float = float("nan")
    inference_samples_per_s: float = float("nan")
    latency_ms_per_batch: float = float("nan")


@torch.no_grad()
def predict(model, split: SplitTensors, modalities: list[str], present: torch.Tensor) -> torch.Tensor:
    """Predicted class per row, in batches. present: bool (N, M) -> (N,)"""
    model.eval()
    tokens = model.consumes_tokens
    device = split.labels.device
    out = []
    for start in range(0, len(split), EVAL_BATCH):
        index = torch.arange(start, min(len(split), start + EVAL_BATCH), device=device)
        inputs, token_mask = model_inputs(split, modalities, index, tokens)
        out.append(model(inputs, present[index], token_mask).argmax(dim=-1))
    return torch.cat(out)


def accuracy(pred: torch.Tensor, labels: torch.Tensor) -> float:
    return float((pred == labels).float().mean())


def full_accuracy(model, split: SplitTensors, modalities: list[str]) -> float:
    """Accuracy with every modality present (used for validation during tuning)."""
    present = subset_presence(len(split), modalities, tuple(modalities), split.labels.device)
    return accuracy(predict(model, split, modalities, present), split.labels)


def subsets(modalities: list[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset, largest first."""
    return [c for r in range(len(modalities), 0, -1) for c in itertools.combinations(modalities, r)]


def robustness_score(curve: dict[float, float], full_input_accuracy: float) -> float:
    """Area under the accuracy-vs-missing-rate curve over [0, 0.9], divided by the width of
    that interval and by full-input accuracy. 1.0 = no loss at any missing rate."""
    rates = np.array(sorted(curve))
    accs = np.array([curve[r] for r in rates])
    if full_input_accuracy <= 0 or len(rates) < 2:
        return float("nan")
    area = float(np.sum((accs[1:] + accs[:-1]) / 2 * np.diff(rates)))
    return area / float(rates[-1] - rates[0]) / full_input_accuracy


def evaluate(model, split: SplitTensors, modalities: list[str], seed: int = 1234, curve: bool = True) -> Evaluation:
    device = split.labels.device
    n = len(split)
    full = subset_presence(n, modalities, tuple(modalities), device)
    pred = predict(model, split, modalities, full)
    labels = split.labels
    result = Evaluation(
        accuracy=accuracy(pred, labels),
        macro_f1=float(f1_score(labels.cpu().numpy(), pred.cpu().numpy(), average="macro", zero_division=0)),
    )
    for subset in subsets(modalities):
        mask = subset_presence(n, modalities, subset, device)
        result.subset_accuracy["+".join(subset)] = accuracy(predict(model, split, modalities, mask), labels)
    if curve:
        generator = torch.Generator().manual_seed(seed)
        for rate in MISSING_RATES:
            mask = random_presence(n, len(modalities), rate, generator, device)
            result.missing_curve[rate] = accuracy(predict(model, split, modalities, mask), labels)
        result.robustness = robustness_score(result.missing_curve, result.accuracy)
    result.inference_samples_per_s, result.latency_ms_per_batch = inference_speed(model, split, modalities)
    return result


@torch.no_grad()
def inference_speed(model, split: SplitTensors, modalities: list[str], batch: int = EVAL_BATCH,
                    warmup: int = 2, repeats: int = 5) -> tuple[float, float]:
    """(samples/s, ms per batch) for forward passes of ``batch`` rows, after warm-up."""
    model.eval()
    tokens = model.consumes_tokens
    device = split.labels.device
    index = torch.arange(min(batch, len(split)), device=device)
    inputs, token_mask = model_inputs(split, modalities, index, tokens)
    present = subset_presence(len(index), modalities, tuple(modalities), device)
    for _ in range(warmup):
        model(inputs, present, token_mask)
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        model(inputs, present, token_mask)
    synchronize(device)
    seconds = (time.perf_counter() - started) / repeats
    return len(index) / seconds, seconds * 1000.0
