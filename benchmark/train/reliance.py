"""Modality reliance: how much a trained model's test score depends on each modality's content
(permutation importance, Breiman 2001, "Random Forests"; Fisher, Rudin & Dominici 2019, "All Models
are Wrong, but Many are Useful"). A model can score well with every modality present and still
ignore one; removing a modality (the subset scores) says what its absence costs, permuting it says
whether the model reads it at all, with the inputs still looking like real data.

- Reliance on modality m: one modality's inputs are shuffled across the test rows (row i gets the
  m-input of row pi(i), its token padding mask and its presence in the data with it, so a row's
  missing mask moves with its data; the other modalities stay in place), and the model is scored in
  the ranking metric. reliance(m) = the mean over PERMUTATIONS permutations of
  sign x (score on the full input - score with m permuted), sign = +1 where higher is better and -1
  where lower is better (mae, rmse): a positive reliance always means the score got worse. About 0
  for a modality the model ignores. Permutation k draws pi from a torch.Generator seeded with
  PERMUTATION_SEED + k, the same for every cell, seed and modality (common random numbers).
- A row whose only modality in the data is m, given the row of one that lacks m, would be left with
  none: it keeps its own m-input and both scores leave it out (:func:`compared_rows`).
- Reliance shares: share(m) = max(reliance(m), 0) / sum over modalities of max(reliance, 0), the
  clipped reliances normalised to sum to 1 (a negative reliance, noise around 0, counts as none).
  Undefined (none logged) when no modality has a positive reliance.
- Equity index: the normalised entropy of the shares, -sum share(m) ln share(m) / ln M (0 ln 0 = 0):
  1 when the model relies on its M modalities equally, 0 when it relies on one only. Undefined with
  fewer than two modalities or without shares.

Reported only: never used to choose anything."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from benchmark.vocabulary import RELIANCE_EQUITY, higher_is_better, reliance_metric, reliance_share_metric

PERMUTATIONS = 3
PERMUTATION_SEED = 2024


def permutations(n: int, count: int = PERMUTATIONS) -> list[torch.Tensor]:
    """``count`` permutations of the n rows, permutation k drawn with seed PERMUTATION_SEED + k. -> count x (N,)"""
    return [torch.randperm(n, generator=torch.Generator().manual_seed(PERMUTATION_SEED + k)) for k in range(count)]


def permuted_rows(permutation: torch.Tensor, column: int, available: torch.Tensor) -> torch.Tensor:
    """Which row each row reads modality ``column`` from: ``permutation``, except rows that would be
    left with no modality in the data (their own only one is ``column`` and the row they would read it
    from lacks it), which keep their own. permutation: (N,); available: bool (N, M) -> (N,)"""
    available = available.to("cpu", torch.bool)
    others = available.clone()
    others[:, column] = False
    empty = ~others.any(dim=1) & ~available[permutation, column]  # (N,): nothing left after the move
    return torch.where(empty, torch.arange(len(permutation)), permutation)


def compared_rows(permutation: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Rows whose modality was really moved as ``permutation`` says (not kept by :func:`permuted_rows`),
    plus rows the permutation maps to themselves. (N,), (N,) -> bool (N,)"""
    return rows == permutation


@dataclass(frozen=True)
class Permuted:
    """One test condition of the reliance: ``modality`` read from rows ``rows`` (permutation ``index``)."""

    modality: str
    index: int
    rows: torch.Tensor  # (N,): the row each row reads the modality from
    compared: torch.Tensor  # bool (N,): the rows both scores are measured on

    def move(self) -> dict[str, torch.Tensor]:
        """As evaluation.logits_under takes it: modality -> rows."""
        return {self.modality: self.rows}


def permuted_conditions(modalities: list[str], available: torch.Tensor, count: int = PERMUTATIONS) -> list[Permuted]:
    """Every (modality, permutation) condition of the reliance, modalities in sorted order. available: bool (N, M)"""
    out = []
    for index, permutation in enumerate(permutations(len(available), count)):
        for column, modality in enumerate(modalities):
            rows = permuted_rows(permutation, column, available)  # (N,)
            out.append(Permuted(modality, index, rows, compared_rows(permutation, rows)))
    return out


def modality_reliance(task, metric: str, full: torch.Tensor, permuted: list[torch.Tensor], conditions: list[Permuted],
                      labels: torch.Tensor) -> dict[str, float]:
    """modality -> reliance in ``metric`` (the mean drop over its permutations), from the full-input
    outputs ``full`` (N, width) and each condition's outputs ``permuted`` (N, width); ``task`` scores them."""
    drops: dict[str, list[float]] = {}
    whole = None  # the full-input score on every row, scored once for the conditions that compare every row
    for condition, outputs in zip(conditions, permuted):
        rows = condition.compared.to(full.device)  # (N,)
        if bool(rows.all()):
            whole = task.score(metric, full, labels) if whole is None else whole
            drop = reliance_drop(whole, task.score(metric, outputs, labels), metric)
        elif bool(rows.any()):
            kept = labels[rows.to(labels.device)]
            drop = reliance_drop(task.score(metric, full[rows], kept), task.score(metric, outputs[rows], kept), metric)
        else:
            continue
        drops.setdefault(condition.modality, []).append(drop)
    return {m: sum(values) / len(values) for m, values in drops.items()}


def reliance_drop(full: float, permuted: float, metric: str) -> float:
    """How much worse ``permuted`` is than ``full`` in ``metric``: positive = worse, whatever its direction."""
    return (full - permuted) if higher_is_better(metric) else (permuted - full)


def reliance_shares(reliance: dict[str, float]) -> dict[str, float]:
    """modality -> its share of the clipped reliances (the module says how); {} when none is positive."""
    clipped = {m: max(v, 0.0) if v == v else 0.0 for m, v in reliance.items()}
    total = sum(clipped.values())
    return {m: v / total for m, v in clipped.items()} if total > 0 else {}


def equity_index(reliance: dict[str, float]) -> float:
    """Normalised entropy of the reliance shares: 1 = even, 0 = one modality only; NaN when undefined."""
    shares = reliance_shares(reliance)
    if len(reliance) < 2 or not shares:
        return float("nan")
    entropy = -sum(s * math.log(s) for s in shares.values() if s > 0)
    return max(0.0, entropy / math.log(len(reliance)))  # max: no -0.0 for one modality


def reliance_metrics(reliance: dict[str, float]) -> dict[str, float]:
    """The MLflow metrics of a cell's reliances: "reliance_permuted.<m>", "reliance_share.<m>" and
    "reliance_equity" (the undefined ones left out)."""
    out = {reliance_metric(m): v for m, v in reliance.items() if v == v}
    out.update({reliance_share_metric(m): v for m, v in reliance_shares(reliance).items()})
    equity = equity_index(reliance)
    if equity == equity:
        out[RELIANCE_EQUITY] = equity
    return out
