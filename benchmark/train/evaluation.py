"""Evaluation: full input, every non-empty subset of modalities, a test-time missing-rate
curve with its robustness score, each modality's reliance (the drop when its inputs are permuted
across the rows, benchmark/train/reliance.py), the calibration of a classifier's probabilities on the full input
and along both missing-rate curves (benchmark/train/calibration.py), inference cost; the reference
predictors (majority class, chance) that the collapse rule (benchmark/train/tasks.py,
``Task.collapsed``) compares a model with."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from benchmark.train.batching import model_inputs, random_presence, subset_presence, with_available
from benchmark.train.calibration import calibration_scores
from benchmark.features.tensors import SplitTensors
from benchmark.train.device import synchronize
from benchmark.train.modality_curves import modality_missing_masks
from benchmark.train.reliance import modality_reliance, permuted_conditions
from benchmark.train.tasks import MULTICLASS, Task
from benchmark.vocabulary import higher_is_better

MISSING_RATES = tuple(round(0.1 * i, 1) for i in range(10))  # 0.0 .. 0.9
EVAL_BATCH = 256
# A robustness score divides by the lead over the majority-class predictor; below this lead it
# would be a ratio of noise (a 0.001 lead turned accuracies into scores of 10^4), so it is undefined.
MIN_ROBUSTNESS_LEAD = 0.01


@dataclass(frozen=True)
class References:
    """Predictors every model must beat, on one test split: the task's reference predictor fitted
    on the training labels (:meth:`Task.reference_outputs`: the majority class, the prevalence, the
    mean), scored in each of the task's metrics (``scores``); for multiclass also a uniform guess
    (chance). The ``majority_*`` fields are the multiclass reference's (NaN for other tasks)."""

    majority_class: int
    majority_accuracy: float
    majority_macro_f1: float
    chance_accuracy: float
    task: Task = MULTICLASS
    scores: dict[str, float] = field(default_factory=dict)  # metric -> the reference predictor's test score

    @classmethod
    def of(cls, train_labels: torch.Tensor, test_labels: torch.Tensor, num_classes: int,
           task: Task = MULTICLASS) -> "References":
        outputs = task.reference_outputs(train_labels, num_classes, len(test_labels))  # (N, width)
        scores = task.scores(outputs, test_labels)
        if task.kind != "multiclass":
            nan = float("nan")
            return cls(-1, nan, nan, nan, task, scores)
        majority = int(outputs[0].argmax())
        return cls(majority, scores["accuracy"], scores["macro_f1"], 1.0 / num_classes, task, scores)

    def majority(self, metric: str) -> float:
        """The reference predictor's test ``metric`` (for multiclass: the majority class's)."""
        return self.all_scores()[metric]

    def all_scores(self) -> dict[str, float]:
        """metric -> the reference's test score (built from the majority fields when made without ``of``)."""
        return self.scores or {"accuracy": self.majority_accuracy, "macro_f1": self.majority_macro_f1}


@dataclass
class Evaluation:
    """Test scores in every metric of the task: on the full input (``scores``), per modality subset
    (``subset_scores``: "image+text" -> metric -> score) and per missing rate (``missing_scores``:
    rate -> metric -> score)."""

    scores: dict[str, float]
    subset_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    missing_scores: dict[float, dict[str, float]] = field(default_factory=dict)
    robustness: float = float("nan")
    # only one modality missing (the others present): modality -> rate -> metric -> score, and its robustness
    modality_missing_scores: dict[str, dict[float, dict[str, float]]] = field(default_factory=dict)
    modality_robustness: dict[str, float] = field(default_factory=dict)
    largest_class_share: float = float("nan")  # share of full-input predictions in the most-predicted class
    collapsed: bool = False
    inference_samples_per_s: float = float("nan")
    latency_ms_per_batch: float = float("nan")
    # Calibration (benchmark/train/calibration.py; {} for regression): metric ("ece", "nll", "brier") ->
    # value on the full input, per missing rate (rate -> metric -> value) and with only one modality
    # missing (modality -> rate -> metric -> value), from the same outputs as the scores above.
    calibration: dict[str, float] = field(default_factory=dict)
    missing_calibration: dict[float, dict[str, float]] = field(default_factory=dict)
    modality_missing_calibration: dict[str, dict[float, dict[str, float]]] = field(default_factory=dict)
    # Full-input confusion matrix of a classifying task (vocabulary.CONFUSION_ARTIFACT): {"labels": class
    # names, "matrix": counts, rows the true class, columns the predicted one}; None for other tasks.
    confusion: dict | None = None
    # Per-row test predictions (vocabulary.PREDICTIONS_ARTIFACT): the report's paired bootstrap over test rows.
    predictions: dict | None = None
    # Modality reliance in the ranking metric (benchmark/train/reliance.py): modality -> the mean drop when its
    # inputs are permuted across the test rows (positive = worse).
    reliance: dict[str, float] = field(default_factory=dict)

    def score(self, metric: str) -> float:
        """The full-input test ``metric``."""
        return self.scores[metric]

    def missing_curve_in(self, metric: str) -> dict[float, float]:
        """The missing-rate curve in ``metric``: rate -> score."""
        return {rate: scores[metric] for rate, scores in self.missing_scores.items()}

    # The multiclass names, kept for their readers (NaN / empty where the task has no accuracy).
    @property
    def accuracy(self) -> float:
        return self.scores.get("accuracy", float("nan"))

    @property
    def macro_f1(self) -> float:
        return self.scores.get("macro_f1", float("nan"))

    @property
    def subset_accuracy(self) -> dict[str, float]:
        return {s: v["accuracy"] for s, v in self.subset_scores.items() if "accuracy" in v}

    @property
    def missing_curve(self) -> dict[float, float]:
        return {r: v["accuracy"] for r, v in self.missing_scores.items() if "accuracy" in v}

    @property
    def missing_curve_macro_f1(self) -> dict[float, float]:
        return {r: v["macro_f1"] for r, v in self.missing_scores.items() if "macro_f1" in v}


def model_device(model, split: SplitTensors) -> torch.device:
    """Where ``model`` runs: its parameters' device (the split's labels' for a model without any)."""
    return next((p.device for p in model.parameters()), split.labels.device)


# Input elements (floats) per forward pass of evaluation: 256 rows of 49 tokens x 1280 (an
# EfficientNet grid), the largest batch evaluation used before it ran several conditions per pass;
# pooled features of a few thousand values fit thousands of rows (fewer, larger calls).
EVAL_ELEMENTS = EVAL_BATCH * 49 * 1280
# ... and at most this many rows, whatever their width: a model's activations grow with the rows
# (gated_cross_attention on noisy_mnist: 1.2 GB above its model for 10,000 rows, 0.5 GB for 2,048).
EVAL_MAX_ROWS = 1024


def rows_per_pass(split: SplitTensors, modalities: list[str], tokens: bool) -> int:
    """Rows of input in one evaluation forward pass: EVAL_ELEMENTS input values, at most EVAL_MAX_ROWS."""
    source = split.tokens if tokens else split.pooled
    per_row = sum(int(source[m][0].numel()) for m in modalities) if len(split) else 1
    return max(1, min(EVAL_MAX_ROWS, EVAL_ELEMENTS // max(1, per_row)))


@torch.no_grad()
def logits_under(model, split: SplitTensors, modalities: list[str], masks: list[torch.Tensor],
                 moves: list[dict[str, torch.Tensor] | None] | None = None) -> list[torch.Tensor]:
    """Model outputs for every row under each of ``masks`` (the test conditions: full input, each
    subset, each missing rate ...), in one pass over the rows: each chunk of rows is gathered and
    converted to float32 once, repeated once per mask, and run under all the masks in one forward
    call. Each mask is ANDed with the modalities the data holds (``split.available``; a row left
    with none keeps those: exclude it from a subset's score with :func:`scored_rows`).
    ``moves`` (one per mask, None or {} for none): a condition where row i reads modality m from row
    ``moves[k][m][i]``: its input, token padding mask and presence in the data (a permutation,
    benchmark/train/reliance.py). masks: K x bool (N, M) -> K x (N, C)"""
    model.eval()
    count = len(masks)
    moves = [move or {} for move in (moves or [None] * count)]
    masks = [with_available(mask, moved_available(split.available, modalities, move))
             for mask, move in zip(masks, moves)]  # K x (N, M)
    tokens = model.consumes_tokens
    device = model_device(model, split)
    n = len(split)
    if n == 0:
        raise ValueError("no rows to evaluate: the split is empty")
    chunk = max(1, rows_per_pass(split, modalities, tokens) // count)
    outputs = None  # (K, N, C), filled chunk by chunk: no list of per-batch tensors pinning heap fragments
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        inputs, token_mask = model_inputs(split, modalities, torch.arange(start, stop), tokens, device=device)
        per_condition = [_moved_inputs(split, inputs, token_mask, move, start, stop, tokens, device) for move in moves]
        repeat = {m: torch.cat([c[0][m] for c in per_condition]) for m in inputs}  # m -> (K*b, ...)
        repeat_mask = None if token_mask is None else {m: torch.cat([c[1][m] for c in per_condition])
                                                       for m in token_mask}  # m -> (K*b, T)
        present = torch.cat([mask[start:stop] for mask in masks]).to(device)  # (K*b, M)
        batch = model(repeat, present, repeat_mask)  # (K*b, C)
        batch = batch.view(count, stop - start, *batch.shape[1:])  # (K, b, C)
        if outputs is None:
            outputs = batch.new_empty((count, n) + tuple(batch.shape[2:]))
        outputs[:, start:stop] = batch
    return list(outputs)


def moved_available(available: torch.Tensor, modalities: list[str], move: dict[str, torch.Tensor]) -> torch.Tensor:
    """The data's presence as a condition with ``move`` sees it: column m read from rows ``move[m]``.
    (N, M) -> (N, M)"""
    if not move:
        return available
    moved = available.clone()
    for m, rows in move.items():
        column = modalities.index(m)
        moved[:, column] = available[rows.to(available.device), column]
    return moved


def _moved_inputs(split: SplitTensors, inputs: dict, token_mask: dict | None, move: dict[str, torch.Tensor],
                  start: int, stop: int, tokens: bool, device):
    """The chunk's inputs (and token masks) for one condition: those of rows start..stop, with each
    modality of ``move`` read from the rows it names. -> (inputs, token_mask)"""
    if not move:
        return inputs, token_mask
    inputs, token_mask = dict(inputs), (dict(token_mask) if token_mask is not None else None)
    for m, rows in move.items():
        picked, picked_mask = model_inputs(split, [m], rows[start:stop], tokens, device=device)
        inputs[m] = picked[m]  # (b, D) or (b, T, D)
        if token_mask is not None:
            token_mask[m] = picked_mask[m]  # (b, T)
    return inputs, token_mask


def logits_of(model, split: SplitTensors, modalities: list[str], present: torch.Tensor) -> torch.Tensor:
    """Model outputs for every row under one presence mask (:func:`logits_under`). present: bool (N, M) -> (N, C)"""
    return logits_under(model, split, modalities, [present])[0]


def full_score(model, split: SplitTensors, modalities: list[str], metric: str, task: Task = MULTICLASS) -> float:
    """The test ``metric`` with every modality present."""
    present = subset_presence(len(split), modalities, tuple(modalities), split.labels.device)
    return task.score(metric, logits_of(model, split, modalities, present), split.labels)


def validation_scores(model, split: SplitTensors, modalities: list[str], metric: str = "accuracy",
                      task: Task = MULTICLASS) -> tuple[float, float]:
    """(``metric`` (the card's ranking metric), mean training loss of the task) with every modality
    present: what early stopping and tuning optimise on the validation split, in the metric's
    direction; epochs tied on the metric are ranked by the loss (small validation splits tie often)."""
    present = subset_presence(len(split), modalities, tuple(modalities), split.labels.device)
    return score_and_loss(logits_of(model, split, modalities, present), split.labels, metric, task)


def score_and_loss(logits: torch.Tensor, labels: torch.Tensor, metric: str,
                   task: Task = MULTICLASS) -> tuple[float, float]:
    """(``metric``, mean loss of the task) of the outputs ``logits`` (N, width) against ``labels``."""
    labels = labels.to(logits.device)
    return task.score(metric, logits, labels), float(task.loss(logits, labels))


def scored_rows(present: torch.Tensor, available: torch.Tensor) -> torch.Tensor:
    """Rows that keep at least one modality of ``present`` once ANDed with the data's own
    presence: a subset's score is measured on these only. (N, M), (N, M) -> bool (N,)"""
    return (present & available.to(present.device, torch.bool)).any(dim=1)


def subsets(modalities: list[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset, largest first."""
    return [c for r in range(len(modalities), 0, -1) for c in itertools.combinations(modalities, r)]


def robustness_score(curve: dict[float, float], majority: float, higher_is_better: bool = True) -> float:
    """How much of its lead over the reference predictor (``majority``: the majority class, the
    prevalence or the mean) a model keeps as modalities go missing: the mean over missing rates r
    (trapezoid rule over [0, 0.9]) of lead(r) / lead(0), lead(r) = score(r) - reference in the
    dataset's ranking metric, sign flipped where lower is better (mae, rmse). 1 = keeps its whole
    lead at every rate, 0 = falls to the reference. Undefined (NaN) when score(0) does not beat the
    reference by MIN_ROBUSTNESS_LEAD, so a constant predictor has no score."""
    rates = np.array(sorted(curve))
    if len(rates) < 2:
        return float("nan")
    sign = 1.0 if higher_is_better else -1.0
    lead = sign * (curve[rates[0]] - majority)
    if not lead >= MIN_ROBUSTNESS_LEAD:
        return float("nan")
    kept = np.array([sign * (curve[r] - majority) / lead for r in rates])
    area = float(np.sum((kept[1:] + kept[:-1]) / 2 * np.diff(rates)))
    return area / float(rates[-1] - rates[0])


def confusion_matrix(task: Task, outputs: torch.Tensor, labels: torch.Tensor,
                     class_names: list[str] | None = None) -> dict | None:
    """{"labels": class names, "matrix": counts} of a classifying task's outputs (N, width) against
    ``labels`` (N,): row i, column j = rows of true class i predicted as class j (binary: at the task's
    0.5 threshold). Class names default to the ids as strings. None unless the task classifies."""
    if not task.classifies:
        return None
    predicted = task.class_decisions(outputs)  # (N,) class ids
    truth = labels.detach().cpu().numpy().astype(np.int64)  # (N,)
    count = len(class_names) if class_names else (outputs.shape[-1] if task.kind == "multiclass" else 2)
    count = max(count, int(truth.max(initial=-1)) + 1, int(predicted.max(initial=-1)) + 1)
    names = [str(c) for c in class_names] if class_names and len(class_names) == count else [str(i) for i in range(count)]
    matrix = np.bincount(truth * count + predicted, minlength=count * count).reshape(count, count)  # (C, C)
    return {"labels": names, "matrix": matrix.tolist()}


def row_predictions(task: Task, labels: torch.Tensor, full: torch.Tensor, missing: dict[float, torch.Tensor]) -> dict:
    """The PREDICTIONS_ARTIFACT content: the labels and the predictions on the full input and at each
    rate of ``missing`` (rate -> outputs), one entry per test row in the split's order. Probabilities
    and values are rounded to 5 decimals (the artifact stays small; no metric moves at that precision)."""
    def listed(outputs: torch.Tensor) -> list:
        values = task.predictions(outputs)
        return values.tolist() if task.kind == "multiclass" else np.round(values.astype(np.float64), 5).tolist()

    truth = labels.detach().cpu().numpy()
    return {"task": task.kind, "truth": truth.tolist() if task.kind != "regression" else np.round(
                truth.astype(np.float64), 5).tolist(),
            "full": listed(full), "missing": {f"{int(round(rate * 100)):02d}": listed(o) for rate, o in missing.items()}}


def evaluate(model, split: SplitTensors, modalities: list[str], references: References, seed: int = 1234,
             curve: bool = True, metric: str = "accuracy", class_names: list[str] | None = None) -> Evaluation:
    """Everything measured on the test split, in every metric of the task (``references.task``).
    ``metric`` (the card's ranking metric) is the one the robustness score is measured in;
    ``class_names`` (the FeatureSet's) name the rows and columns of the confusion matrix."""
    task = references.task
    device = split.labels.device
    n = len(split)
    labels = split.labels
    # Every test condition's presence mask, then one batched pass over the rows for all of them.
    masks = {"full": subset_presence(n, modalities, tuple(modalities), device)}  # condition -> (N, M)
    scored_subsets = {}
    for subset in subsets(modalities):
        mask = subset_presence(n, modalities, subset, device)
        scored = scored_rows(mask, split.available)  # (N,): rows holding some modality of the subset
        if bool(scored.any()):  # else no row of the data holds any of the subset's modalities: no score
            masks[("subset", subset)] = mask
            scored_subsets[subset] = scored
    modality_masks = {}
    if curve:
        generator = torch.Generator().manual_seed(seed)
        for rate in MISSING_RATES:
            masks[("missing", rate)] = random_presence(n, len(modalities), rate, generator, device, split.available)
        modality_masks = modality_missing_masks(n, modalities, MISSING_RATES, split.available, seed, device)
        for modality, by_rate in modality_masks.items():
            for rate, mask in by_rate.items():
                if mask is not None:
                    masks[("modality", modality, rate)] = mask
    moves = [None] * len(masks)
    permuted = permuted_conditions(modalities, split.available)
    for condition in permuted:
        masks[("permuted", condition.modality, condition.index)] = masks["full"]
        moves.append(condition.move())
    outputs = dict(zip(masks, logits_under(model, split, modalities, list(masks.values()), moves)))  # -> (N, width)
    full = outputs["full"]
    result = Evaluation(scores=task.scores(full, labels), largest_class_share=task.largest_class_share(full))
    result.collapsed = task.collapsed(full, labels, result.scores, references.all_scores())
    result.confusion = confusion_matrix(task, full, labels, class_names)
    result.predictions = row_predictions(
        task, labels, full, {MISSING_RATES[-1]: outputs[("missing", MISSING_RATES[-1])]} if curve else {})
    result.calibration = calibration_scores(task.kind, full, labels)
    result.reliance = modality_reliance(task, metric, full, [outputs[("permuted", c.modality, c.index)] for c in permuted],
                                        permuted, labels)
    for subset, scored in scored_subsets.items():
        subset_outputs = outputs[("subset", subset)][scored.to(full.device)]  # (N_scored, width)
        result.subset_scores["+".join(subset)] = task.scores(subset_outputs, labels[scored.to(labels.device)])
    if curve:
        for rate in MISSING_RATES:
            result.missing_scores[rate] = task.scores(outputs[("missing", rate)], labels)
            if result.calibration:
                result.missing_calibration[rate] = calibration_scores(task.kind, outputs[("missing", rate)], labels)
        if not result.collapsed:
            result.robustness = robustness_score(result.missing_curve_in(metric), references.majority(metric),
                                                 higher_is_better(metric))
        result.modality_missing_scores = {
            modality: {rate: dict(result.scores) if mask is None else task.scores(outputs[("modality", modality, rate)],
                                                                                  labels)
                       for rate, mask in by_rate.items()}
            for modality, by_rate in modality_masks.items()}
        if result.calibration:
            result.modality_missing_calibration = {
                modality: {rate: dict(result.calibration) if mask is None else calibration_scores(
                    task.kind, outputs[("modality", modality, rate)], labels) for rate, mask in by_rate.items()}
                for modality, by_rate in modality_masks.items()}
        for modality, by_rate in result.modality_missing_scores.items():
            result.modality_robustness[modality] = float("nan") if result.collapsed else robustness_score(
                {rate: scores[metric] for rate, scores in by_rate.items()}, references.majority(metric),
                higher_is_better(metric))
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
    present = with_available(subset_presence(len(index), modalities, tuple(modalities), device),
                             split.available[index.to(split.available.device)])  # (b, M)
    for _ in range(warmup):
        model(inputs, present, token_mask)
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        model(inputs, present, token_mask)
    synchronize(device)
    seconds = (time.perf_counter() - started) / repeats
    return len(index) / seconds, seconds * 1000.0
