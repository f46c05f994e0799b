"""What a card's task type means for training and evaluation: the loss per row, the test metrics,
the reference predictor's output. One place, used by the single loop, the stacked loop, the
validation score and the test evaluation alike.

Model outputs per task: multiclass logits (N, C); binary one logit (N, 1) (or (N,)); multilabel
one logit per label (N, L); regression the prediction (N, 1) (or (N,)). Labels as
:class:`benchmark.features.tensors.SplitTensors` holds them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from benchmark.vocabulary import DEFAULT_TASK, SIGN_ACCURACY, task_metrics

THRESHOLD = 0.5  # binary and multilabel: a probability at or above it predicts the class


@dataclass(frozen=True)
class Task:
    """A task type and the card's choices that go with it."""

    kind: str = DEFAULT_TASK  # multiclass | binary | multilabel | regression
    regression_loss: str = "mse"  # regression: "mse" or "l1"
    sign_accuracy: bool = False  # regression: also score the sign (MOSI acc-2)

    @classmethod
    def of(cls, features) -> "Task":
        """The task of a :class:`benchmark.features.tensors.FeatureSet`."""
        return cls(features.task, features.regression_loss, features.sign_accuracy)

    @property
    def metrics(self) -> tuple[str, ...]:
        return task_metrics(self.kind, self.sign_accuracy)

    @property
    def classifies(self) -> bool:
        """Whether each row gets one predicted class (multiclass, binary)."""
        return self.kind in ("multiclass", "binary")

    def row_losses(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The training loss of each row, in float32. outputs: (N, C) / (N, 1) / (N, L); -> (N,)
        multiclass: cross-entropy; binary: BCE with logits; multilabel: BCE with logits averaged
        over the labels; regression: squared error (or absolute error with regression_loss l1)."""
        outputs = outputs.float()
        functional = torch.nn.functional
        if self.kind == "multiclass":
            return functional.cross_entropy(outputs, labels, reduction="none")  # (N,)
        if self.kind == "multilabel":
            return functional.binary_cross_entropy_with_logits(outputs, labels.float(), reduction="none").mean(-1)
        values = outputs.reshape(labels.shape)  # (N, 1) -> (N,)
        if self.kind == "binary":
            return functional.binary_cross_entropy_with_logits(values, labels.float(), reduction="none")  # (N,)
        if self.regression_loss == "l1":
            return functional.l1_loss(values, labels.float(), reduction="none")  # (N,)
        return functional.mse_loss(values, labels.float(), reduction="none")  # (N,)

    def loss(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The mean of :meth:`row_losses` (a scalar)."""
        return self.row_losses(outputs, labels).mean()

    def predictions(self, outputs: torch.Tensor) -> np.ndarray:
        """What the metrics score, as numpy: multiclass class ids (N,); binary the positive class's
        probability (N,); multilabel each label's probability (N, L); regression the value (N,)."""
        outputs = outputs.detach().float().cpu()
        if self.kind == "multiclass":
            return outputs.argmax(dim=-1).numpy()
        if self.kind == "multilabel":
            return torch.sigmoid(outputs).numpy()
        values = outputs.reshape(outputs.shape[0])  # (N, 1) -> (N,)
        return torch.sigmoid(values).numpy() if self.kind == "binary" else values.numpy()

    def scores(self, outputs: torch.Tensor, labels: torch.Tensor, metrics: tuple[str, ...] | None = None
               ) -> dict[str, float]:
        """Each of ``metrics`` (default: every metric of the task) of ``outputs`` against ``labels``."""
        pred, truth = self.predictions(outputs), labels.detach().cpu().numpy()
        return {metric: float(METRICS[metric](self.kind, pred, truth)) for metric in (metrics or self.metrics)}

    def score(self, metric: str, outputs: torch.Tensor, labels: torch.Tensor) -> float:
        return self.scores(outputs, labels, (metric,))[metric]

    def reference_outputs(self, train_labels: torch.Tensor, num_classes: int, rows: int) -> torch.Tensor:
        """The reference predictor's outputs for ``rows`` rows, fitted on the training labels:
        multiclass the majority class; binary the training prevalence as a constant probability;
        multilabel each label's training prevalence; regression the training mean."""
        labels = train_labels.detach().cpu()
        if self.kind == "multiclass":
            majority = int(torch.bincount(labels, minlength=num_classes).argmax())
            row = torch.zeros(num_classes)
            row[majority] = 1.0  # its argmax is the majority class
        elif self.kind in ("binary", "multilabel"):
            prevalence = labels.float().mean(dim=0).clamp(1e-6, 1 - 1e-6)  # () or (L,)
            row = torch.logit(prevalence).reshape(-1)  # (1,) or (L,)
        else:
            row = labels.float().mean().reshape(1)  # (1,)
        return row.unsqueeze(0).expand(rows, -1)  # (rows, width)

    def collapsed(self, outputs: torch.Tensor, labels: torch.Tensor, scores: dict[str, float],
                  reference: dict[str, float]) -> bool:
        """Whether the model answers (nearly) the same whatever the input, or does no better than
        the reference predictor. multiclass: (nearly) one predicted class, or macro-F1 not above the
        majority class's; binary: (nearly) constant probabilities, or AUROC not above 0.5;
        multilabel: (nearly) constant probabilities, or mean AP not above the prevalence
        predictor's; regression: (nearly) zero variance, or MAE no better than the training mean's."""
        pred, truth = self.predictions(outputs), labels.detach().cpu().numpy()
        if self.kind == "multiclass":
            one_class = largest_share(pred) >= NEARLY_ONE_CLASS > largest_share(truth)
            return one_class or scores["macro_f1"] <= reference["macro_f1"] + 1e-9
        if self.kind == "regression":
            flat = float(np.std(pred)) <= 1e-3 * max(float(np.std(truth)), 1e-12)
            return flat or scores["mae"] >= reference["mae"] - 1e-9
        constant = float(np.std(pred, axis=0).max()) < 1e-4
        key = "auroc" if self.kind == "binary" else "mean_ap"
        return constant or (math.isfinite(scores[key]) and scores[key] <= reference[key] + 1e-9)

    def class_decisions(self, outputs: torch.Tensor) -> np.ndarray:
        """The predicted class id of each row (multiclass, binary at THRESHOLD). outputs -> (N,)"""
        return _classes(self.kind, self.predictions(outputs)).astype(np.int64)

    def largest_class_share(self, outputs: torch.Tensor) -> float:
        """Share of the rows predicted as the most-predicted class (NaN unless the task classifies)."""
        if not self.classifies:
            return float("nan")
        return largest_share(_classes(self.kind, self.predictions(outputs)))


NEARLY_ONE_CLASS = 0.95  # a model whose predictions fall this much into one class has collapsed


def largest_share(classes: np.ndarray) -> float:
    values, counts = np.unique(classes, return_counts=True)
    return float(counts.max()) / max(1, len(classes)) if len(values) else float("nan")


def _classes(kind: str, pred: np.ndarray) -> np.ndarray:
    """Class decisions from predictions: ids as they are; probabilities at THRESHOLD."""
    return pred if kind == "multiclass" else (pred >= THRESHOLD).astype(np.int64)


def _accuracy(kind, pred, truth) -> float:
    return float((_classes(kind, pred) == truth.astype(np.int64)).mean())


def _macro_f1(kind, pred, truth) -> float:
    truth = truth.astype(np.int64)
    return f1_score(truth, _classes(kind, pred), average="macro", zero_division=0)


def _f1(kind, pred, truth) -> float:
    return f1_score(truth.astype(np.int64), _classes(kind, pred), zero_division=0)


def _micro_f1(kind, pred, truth) -> float:
    return f1_score(truth.astype(np.int64), _classes(kind, pred), average="micro", zero_division=0)


def _auroc(kind, pred, truth) -> float:
    if len(np.unique(truth)) < 2:
        return float("nan")  # undefined with one class in the labels
    return roc_auc_score(truth.astype(np.int64), pred)


def _mean_ap(kind, pred, truth) -> float:
    """Mean over the labels with at least one positive row of their average precision."""
    truth = truth.astype(np.int64)
    scored = [j for j in range(truth.shape[1]) if truth[:, j].any()]
    if not scored:
        return float("nan")
    return float(np.mean([average_precision_score(truth[:, j], pred[:, j]) for j in scored]))


def _mae(kind, pred, truth) -> float:
    return float(np.abs(pred - truth).mean())


def _rmse(kind, pred, truth) -> float:
    return float(np.sqrt(((pred - truth) ** 2).mean()))


def _pearson_r(kind, pred, truth) -> float:
    if np.std(pred) == 0 or np.std(truth) == 0:
        return float("nan")  # undefined for a constant
    return float(np.corrcoef(pred.astype(np.float64), truth.astype(np.float64))[0, 1])


def _sign_accuracy(kind, pred, truth) -> float:
    """Binary accuracy of the sign over the rows whose label is not zero: MMSA's "Non0_acc_2"
    (the CMU-MOSI acc-2 convention: (prediction > 0) == (label > 0) where label != 0)."""
    nonzero = truth != 0
    if not nonzero.any():
        return float("nan")
    return float(((pred[nonzero] > 0) == (truth[nonzero] > 0)).mean())


METRICS = {
    "accuracy": _accuracy, "macro_f1": _macro_f1, "f1": _f1, "micro_f1": _micro_f1, "auroc": _auroc,
    "mean_ap": _mean_ap, "mae": _mae, "rmse": _rmse, "pearson_r": _pearson_r, SIGN_ACCURACY: _sign_accuracy,
}

MULTICLASS = Task()
