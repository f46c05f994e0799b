"""Evaluation: full input, every non-empty subset of modalities, a test-time missing-rate
curve with its robustness score, inference cost; the reference predictors (majority class,
chance) and the collapse rule that compares a model with them."""

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
NEARLY_ONE_CLASS = 0.95  # a model whose predictions fall this much into one class has collapsed
# A robustness score divides by the lead over the majority-class predictor; below this lead it
# would be a ratio of noise (a 0.001 lead turned accuracies into scores of 10^4), so it is undefined.
MIN_ROBUSTNESS_LEAD = 0.01


@dataclass(frozen=True)
class References:
    """Predictors every model must beat, on one test split: always the training split's most
    frequent class (majority), and a uniform guess (chance)."""

    majority_class: int
    majority_accuracy: float
    majority_macro_f1: float
    chance_accuracy: float

    @classmethod
    def of(cls, train_labels: torch.Tensor, test_labels: torch.Tensor, num_classes: int) -> "References":
        majority = int(torch.bincount(train_labels.cpu(), minlength=num_classes).argmax())
        truth = test_labels.cpu().numpy()
        constant = np.full_like(truth, majority)
        return cls(majority, float((truth == majority).mean()),
                   float(f1_score(truth, constant, average="macro", zero_division=0)), 1.0 / num_classes)

    def majority(self, metric: str) -> float:
        """The majority-class predictor's ``metric`` ("accuracy" or "macro_f1")."""
        return self.majority_macro_f1 if metric == "macro_f1" else self.majority_accuracy


@dataclass
class Evaluation:
    accuracy: float
    macro_f1: float
    subset_accuracy: dict[str, float] = field(default_factory=dict)  # "image+text" -> acc
    missing_curve: dict[float, float] = field(default_factory=dict)  # rate -> acc
    missing_curve_macro_f1: dict[float, float] = field(default_factory=dict)  # rate -> macro-F1
    robustness: float = float("nan")
    largest_class_share: float = float("nan")  # share of full-input predictions in the most-predicted class
    collapsed: bool = False
    inference_samples_per_s: float = float("nan")
    latency_ms_per_batch: float = float("nan")

    def score(self, metric: str) -> float:
        """The full-input test ``metric`` ("accuracy" or "macro_f1")."""
        return self.macro_f1 if metric == "macro_f1" else self.accuracy

    def missing_curve_in(self, metric: str) -> dict[float, float]:
        """The missing-rate curve in ``metric``: rate -> score."""
        return self.missing_curve_macro_f1 if metric == "macro_f1" else self.missing_curve


def model_device(model, split: SplitTensors) -> torch.device:
    """Where ``model`` runs: its parameters' device (the split's labels' for a model without any)."""
    return next((p.device for p in model.parameters()), split.labels.device)


@torch.no_grad()
def logits_of(model, split: SplitTensors, modalities: list[str], present: torch.Tensor) -> torch.Tensor:
    """Model outputs for every row, in batches, on the model's device; each batch's features are
    converted to float32 there (they are held in their cached dtype). present: bool (N, M) -> (N, C)"""
    model.eval()
    tokens = model.consumes_tokens
    device = model_device(model, split)
    logits = None  # (N, C), filled batch by batch: no list of per-batch tensors pinning heap fragments
    for start in range(0, len(split), EVAL_BATCH):
        stop = min(len(split), start + EVAL_BATCH)
        inputs, token_mask = model_inputs(split, modalities, torch.arange(start, stop), tokens, device=device)
        batch = model(inputs, present[start:stop].to(device), token_mask)  # (b, C)
        if logits is None:
            logits = batch.new_empty((len(split),) + tuple(batch.shape[1:]))
        logits[start:stop] = batch
    if logits is None:
        raise ValueError("no rows to evaluate: the split is empty")
    return logits


def predict(model, split: SplitTensors, modalities: list[str], present: torch.Tensor) -> torch.Tensor:
    """Predicted class per row. present: bool (N, M) -> (N,)"""
    return logits_of(model, split, modalities, present).argmax(dim=-1)


def accuracy(pred: torch.Tensor, labels: torch.Tensor) -> float:
    return float((pred == labels.to(pred.device)).float().mean())


def macro_f1(pred: torch.Tensor, labels: torch.Tensor) -> float:
    return float(f1_score(labels.cpu().numpy(), pred.cpu().numpy(), average="macro", zero_division=0))


SCORES = {"accuracy": accuracy, "macro_f1": macro_f1}


def full_accuracy(model, split: SplitTensors, modalities: list[str]) -> float:
    """Accuracy with every modality present."""
    present = subset_presence(len(split), modalities, tuple(modalities), split.labels.device)
    return accuracy(predict(model, split, modalities, present), split.labels)


def validation_scores(model, split: SplitTensors, modalities: list[str], metric: str = "accuracy") -> tuple[float, float]:
    """(``metric`` ("accuracy" or "macro_f1"), mean cross-entropy) with every modality present: what
    early stopping and tuning maximise on the validation split; epochs tied on the metric are
    ranked by the loss (small validation splits tie often)."""
    present = subset_presence(len(split), modalities, tuple(modalities), split.labels.device)
    return score_and_loss(logits_of(model, split, modalities, present), split.labels, metric)


def score_and_loss(logits: torch.Tensor, labels: torch.Tensor, metric: str) -> tuple[float, float]:
    """(``metric``, mean cross-entropy) of ``logits`` (N, C) against ``labels`` (N,)."""
    labels = labels.to(logits.device)
    loss = float(torch.nn.functional.cross_entropy(logits.float(), labels))
    return SCORES[metric](logits.argmax(dim=-1), labels), loss


def largest_class_share(pred: torch.Tensor) -> float:
    return float(torch.bincount(pred.cpu()).max()) / max(1, len(pred))


def is_collapsed(pred: torch.Tensor, labels: torch.Tensor, f1: float, references: References) -> bool:
    """(Nearly) one predicted class, or a macro-F1 no better than always answering the majority
    class. The one-class rule is skipped where the test labels are themselves that skewed."""
    one_class = largest_class_share(pred) >= NEARLY_ONE_CLASS > largest_class_share(labels)
    return one_class or f1 <= references.majority_macro_f1 + 1e-9


def subsets(modalities: list[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset, largest first."""
    return [c for r in range(len(modalities), 0, -1) for c in itertools.combinations(modalities, r)]


def robustness_score(curve: dict[float, float], majority: float) -> float:
    """How much of its lead over the majority-class predictor a model keeps as modalities go
    missing: the mean over missing rates r (trapezoid rule over [0, 0.9]) of
    (score(r) - majority) / (score(0) - majority), in the dataset's ranking metric. 1 = keeps
    its whole lead at every rate, 0 = falls to the majority baseline. Undefined (NaN) when
    score(0) does not beat the majority by MIN_ROBUSTNESS_LEAD, so a constant predictor has no score."""
    rates = np.array(sorted(curve))
    if len(rates) < 2:
        return float("nan")
    lead = curve[rates[0]] - majority
    if not lead >= MIN_ROBUSTNESS_LEAD:
        return float("nan")
    kept = np.array([(curve[r] - majority) / lead for r in rates])
    area = float(np.sum((kept[1:] + kept[:-1]) / 2 * np.diff(rates)))
    return area / float(rates[-1] - rates[0])


def evaluate(model, split: SplitTensors, modalities: list[str], references: References, seed: int = 1234,
             curve: bool = True, metric: str = "accuracy") -> Evaluation:
    """Everything measured on the test split. ``metric`` (the card's ranking metric) is the one
    the robustness score is measured in."""
    device = split.labels.device
    n = len(split)
    full = subset_presence(n, modalities, tuple(modalities), device)
    pred = predict(model, split, modalities, full)
    labels = split.labels
    result = Evaluation(accuracy=accuracy(pred, labels), macro_f1=macro_f1(pred, labels),
                        largest_class_share=largest_class_share(pred))
    result.collapsed = is_collapsed(pred, labels, result.macro_f1, references)
    for subset in subsets(modalities):
        mask = subset_presence(n, modalities, subset, device)
        result.subset_accuracy["+".join(subset)] = accuracy(predict(model, split, modalities, mask), labels)
    if curve:
        generator = torch.Generator().manual_seed(seed)
        for rate in MISSING_RATES:
            mask = random_presence(n, len(modalities), rate, generator, device)
            missing_pred = predict(model, split, modalities, mask)  # (N,)
            result.missing_curve[rate] = accuracy(missing_pred, labels)
            result.missing_curve_macro_f1[rate] = macro_f1(missing_pred, labels)
        if not result.collapsed:
            result.robustness = robustness_score(result.missing_curve_in(metric), references.majority(metric))
    result.inference_samples_per_s, result.latency_ms_per_batch = inference_speed(model, split, modalities)
    return result


@torch.no_grad()
def inference_speed(model, split: SplitTensors, modalities: list[str], batch: int = EVAL_BATCH,
                    warmup: int = 2, repeats: int = 5) -> tuple[float, float]:
    """(samples/s, ms per batch) for forward passes of ``batch`` rows, after warm-up."""
    model.eval()
    tokens = model.consumes_tokens
    device = model_device(model, split)
    index = torch.arange(min(batch, len(split)))
    inputs, token_mask = model_inputs(split, modalities, index, tokens, device=device)  # float32 on device
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
