"""The task metrics recomputed on weighted test rows, many weightings at once: what a bootstrap
over test rows needs. ``weights`` (B, N) holds one resample of the N rows per line (how often each
row was drawn; a line of ones is the test split itself), and every metric returns (B,) values that
equal train/tasks.py's on a line of ones. Metrics that are not a mean over rows (macro-F1, AUROC,
mean AP, Pearson r) are recomputed from their parts (per-class counts, ranks), never approximated
by a per-row score. numpy only: the report never imports torch or needs scikit-learn here."""

from __future__ import annotations

import numpy as np

THRESHOLD = 0.5  # binary and multilabel: a probability at or above it predicts the class (as train/tasks.py)


def _classes(task: str, pred: np.ndarray) -> np.ndarray:
    return pred.astype(np.int64) if task == "multiclass" else (pred >= THRESHOLD).astype(np.int64)


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1), np.nan)


def accuracy(task, pred, truth, weights):
    right = (_classes(task, pred) == truth.astype(np.int64)).astype(np.float32)  # (N,)
    return _ratio(weights @ right, weights.sum(axis=1))


def macro_f1(task, pred, truth, weights):
    """Mean F1 over the classes that occur in the truth or the predictions (scikit-learn's macro average
    with zero_division=0), per resample."""
    predicted, true = _classes(task, pred), truth.astype(np.int64)
    k = int(max(predicted.max(initial=0), true.max(initial=0))) + 1
    eye = np.eye(k, dtype=np.float32)
    t, p = eye[true], eye[predicted]  # (N, K) one-hot
    tp, t_sum, p_sum = weights @ (t * p), weights @ t, weights @ p  # (B, K)
    bottom = t_sum + p_sum  # 2 tp + fp + fn
    f1 = np.where(bottom > 0, 2 * tp / np.where(bottom > 0, bottom, 1), 0.0)
    return _ratio(f1.sum(axis=1), (bottom > 0).sum(axis=1).astype(float))


def f1(task, pred, truth, weights):
    predicted, true = _classes(task, pred).astype(np.float32), truth.astype(np.float32)
    f = _ratio(2 * (weights @ (predicted * true)), weights @ predicted + weights @ true)
    return np.nan_to_num(f, nan=0.0)


def micro_f1(task, pred, truth, weights):
    predicted, true = _classes(task, pred).astype(np.float32), truth.astype(np.float32)  # (N, L)
    both = (predicted * true).sum(axis=1) if predicted.ndim == 2 else predicted * true
    p_rows = predicted.sum(axis=1) if predicted.ndim == 2 else predicted
    t_rows = true.sum(axis=1) if true.ndim == 2 else true
    return np.nan_to_num(_ratio(2 * (weights @ both), weights @ p_rows + weights @ t_rows), nan=0.0)


def _groups(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order of the rows by score ascending, start of each group of tied scores in that order)."""
    order = np.argsort(scores, kind="mergesort")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    return order, starts


def auroc(task, pred, truth, weights):
    """Weighted Mann-Whitney: P(a positive row scores above a negative one), ties count one half."""
    order, starts = _groups(pred)
    positive = truth[order].astype(np.float32)
    w = weights[:, order]
    pos = np.add.reduceat(w * positive, starts, axis=1)  # (B, G) positive weight per tied group
    neg = np.add.reduceat(w * (1 - positive), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    return _ratio((pos * (below + 0.5 * neg)).sum(axis=1), pos.sum(axis=1) * neg.sum(axis=1))


def _average_precision(scores: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> np.ndarray:
    order, starts = _groups(-scores)  # descending: thresholds from the highest score down
    positive = truth[order].astype(np.float32)
    w = weights[:, order]
    pos = np.add.reduceat(w * positive, starts, axis=1)  # (B, G)
    seen = np.cumsum(np.add.reduceat(w, starts, axis=1), axis=1)
    tp = np.cumsum(pos, axis=1)
    precision = _ratio(tp, seen)
    return _ratio(np.nansum(pos * precision, axis=1), pos.sum(axis=1))


def mean_ap(task, pred, truth, weights):
    """Mean over the labels with a positive row (in the resample) of their average precision."""
    values = np.stack([_average_precision(pred[:, j], truth[:, j], weights) for j in range(truth.shape[1])], axis=1)
    with np.errstate(invalid="ignore"):
        return np.nanmean(np.where(np.isfinite(values), values, np.nan), axis=1)


def mae(task, pred, truth, weights):
    return _ratio(weights @ np.abs(pred - truth).astype(np.float64), weights.sum(axis=1))


def rmse(task, pred, truth, weights):
    return np.sqrt(_ratio(weights @ ((pred - truth) ** 2).astype(np.float64), weights.sum(axis=1)))


def pearson_r(task, pred, truth, weights):
    total = weights.sum(axis=1)
    mx, my = _ratio(weights @ pred, total), _ratio(weights @ truth, total)
    cov = _ratio(weights @ (pred * truth), total) - mx * my
    vx = _ratio(weights @ (pred * pred), total) - mx ** 2
    vy = _ratio(weights @ (truth * truth), total) - my ** 2
    return _ratio(cov, np.sqrt(np.clip(vx, 0, None) * np.clip(vy, 0, None)))


def sign_accuracy(task, pred, truth, weights):
    nonzero = (truth != 0).astype(np.float64)
    right = ((pred > 0) == (truth > 0)).astype(np.float64) * nonzero
    return _ratio(weights @ right, weights @ nonzero)


ROW_METRICS = {"accuracy": accuracy, "macro_f1": macro_f1, "f1": f1, "micro_f1": micro_f1, "auroc": auroc,
               "mean_ap": mean_ap, "mae": mae, "rmse": rmse, "pearson_r": pearson_r, "sign_accuracy": sign_accuracy}
