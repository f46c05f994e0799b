"""Calibration of a classifier's probabilities: whether its confidence can be trusted, on the full
input and as modalities go missing (a model that keeps 90% confidence at 60% accuracy misleads
whoever acts on its scores). Three numbers per test condition, from the outputs evaluation already
has (benchmark/train/evaluation.py); they are reported, never used to choose anything.

- ECE, expected calibration error (Guo et al. 2017, "On Calibration of Modern Neural Networks"):
  the rows are put in ECE_BINS equal-width bins of confidence over [0, 1] (bin b holds confidences
  in ((b - 1) / B, b / B], the first also 0), and ECE = sum over bins of (rows in bin / N) x
  |accuracy in bin - mean confidence in bin|. 0 = confidence matches accuracy.
- NLL, negative log-likelihood: the mean of -log p(true label), natural log.
- Brier score (Brier 1950): the mean squared distance between the probabilities and the one-hot truth.

What each task gets (vocabulary.calibration_metrics):

- multiclass, outputs logits (N, C): probabilities softmax(logits); ECE is top-label ECE (confidence
  = the largest probability, correct = its class is the label); NLL = cross-entropy; Brier =
  sum over the C classes of (p_c - [c = y])^2, averaged over rows (0 .. 2).
- binary, outputs one logit (N, 1): p = sigmoid(logit); ECE is top-label ECE of the two-class
  distribution (1 - p, p) (confidence max(p, 1 - p), correct = (p >= 0.5) == y); NLL = binary
  cross-entropy; Brier = (p - y)^2 averaged over rows (0 .. 1, the usual binary form, half the
  two-class sum above).
- multilabel, outputs one logit per label (N, L): every (row, label) pair is one binary decision,
  scored as binary above and pooled over all N x L pairs (ECE over the pooled pairs; NLL and Brier
  averaged over them).
- regression: none (no probabilities): an empty dict.
"""

from __future__ import annotations

import torch

ECE_BINS = 15


def expected_calibration_error(confidence: torch.Tensor, correct: torch.Tensor, bins: int = ECE_BINS) -> float:
    """ECE over equal-width confidence bins. confidence: (N,) in [0, 1]; correct: bool (N,) -> float"""
    confidence = confidence.double().clamp(0.0, 1.0)  # (N,)
    if confidence.numel() == 0:
        return float("nan")
    which = (torch.ceil(confidence * bins).long() - 1).clamp(0, bins - 1)  # (N,): bin b (from 0) holds (b/B, (b+1)/B]
    confidence_sum = torch.bincount(which, weights=confidence, minlength=bins)  # (B,)
    correct_sum = torch.bincount(which, weights=correct.double(), minlength=bins)  # (B,)
    gap = (correct_sum - confidence_sum).abs()  # (B,): rows_b x |accuracy_b - confidence_b|
    return float(gap.sum() / confidence.numel())


def multiclass_calibration(logits: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> dict[str, float]:
    """{"ece", "nll", "brier"} of softmax(logits). logits: (N, C); labels: (N,) class ids"""
    logits = logits.detach().double().cpu()  # (N, C)
    labels = labels.detach().long().cpu()  # (N,)
    log_probs = torch.log_softmax(logits, dim=-1)  # (N, C)
    probs = log_probs.exp()  # (N, C)
    confidence, predicted = probs.max(dim=-1)  # (N,), (N,)
    onehot = torch.nn.functional.one_hot(labels, logits.shape[-1]).double()  # (N, C)
    nll = -log_probs.gather(1, labels[:, None]).squeeze(1)  # (N,)
    brier = ((probs - onehot) ** 2).sum(dim=-1)  # (N,)
    return {"ece": expected_calibration_error(confidence, predicted == labels, bins),
            "nll": float(nll.mean()), "brier": float(brier.mean())}


def binary_calibration(logits: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> dict[str, float]:
    """{"ece", "nll", "brier"} of independent positive-class probabilities sigmoid(logits), every
    element one decision (binary (N, 1) or (N,); multilabel (N, L) pooled). labels: same shape, 0/1"""
    logits = logits.detach().double().cpu()
    truth = labels.detach().double().cpu().reshape(logits.shape)  # same shape as logits
    p = torch.sigmoid(logits).flatten()  # (N*L,)
    y = truth.flatten()  # (N*L,)
    positive = p >= 0.5  # (N*L,): the decision at the tasks' threshold
    confidence = torch.where(positive, p, 1.0 - p)  # (N*L,): the top label's probability
    nll = torch.nn.functional.binary_cross_entropy_with_logits(logits.flatten(), y, reduction="none")  # (N*L,)
    return {"ece": expected_calibration_error(confidence, positive == (y > 0.5), bins),
            "nll": float(nll.mean()), "brier": float(((p - y) ** 2).mean())}


def calibration_scores(task_kind: str, outputs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """The calibration metrics of ``outputs`` against ``labels`` for a task (the module says what each
    task gets): {} for regression."""
    if task_kind == "multiclass":
        return multiclass_calibration(outputs, labels)
    if task_kind in ("binary", "multilabel"):
        return binary_calibration(outputs, labels)
    return {}
