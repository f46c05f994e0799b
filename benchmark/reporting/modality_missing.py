"""Imbalanced missingness in the report: per configuration, the test score when only one modality
goes missing (the others present) at each logged rate, and the robustness score per modality,
read from the `test_<metric>_missing_<modality>.NN` and `robustness_missing_<modality>` metrics.
Runs logged before these metrics existed have none: the report then leaves the section out."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from benchmark.reporting.analysis import DatasetAnalysis, metric_spec
from benchmark.vocabulary import modality_missing_prefix, modality_robustness_metric


@dataclass
class ModalityMissing:
    """The per-modality curves of one dataset. ``configs`` is ``a.ranked`` (same order and index) with
    columns "<modality>:<rate>" (mean score over seeds, rate in percent) and "robustness:<modality>"."""

    metric: str  # the curves' metric (the ranking one where logged, else accuracy)
    modalities: list[str]
    rates: list[int]  # percent
    configs: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def higher_is_better(self) -> bool:
        return metric_spec(self.metric)[1]


def _suffixes(runs: pd.DataFrame, metric: str) -> dict[str, set[int]]:
    """modality -> rates (percent) logged as "test_<metric>_missing_<modality>.NN" by some run."""
    start = f"test_{metric}_missing_"
    found: dict[str, set[int]] = {}
    for column in runs.columns:
        if not column.startswith(start) or not runs[column].notna().any():
            continue
        modality, _, rate = column[len(start):].rpartition(".")
        if modality and rate.isdigit():
            found.setdefault(modality, set()).add(int(rate))
    return found


def modality_missing(a: DatasetAnalysis) -> ModalityMissing | None:
    """The per-modality curves of ``a``'s ranked configurations, or None when no run logged them."""
    runs, ranked = a.runs, a.ranked
    if runs.empty or ranked.empty:
        return None
    metric = next((m for m in (a.ranking, a.curve_metric, "accuracy") if _suffixes(runs, m)), None)
    if metric is None:
        return None
    found = _suffixes(runs, metric)
    modalities = sorted(found)
    rates = sorted(set.intersection(*found.values()))
    groups = dict(list(runs.groupby(["variant", "dropout"])))
    out = ranked.copy()
    for index, row in ranked.iterrows():
        group = groups.get((row["variant"], row["dropout"]), runs.iloc[0:0])
        for m in modalities:
            for r in rates:
                column = modality_missing_prefix(m, metric) + f"{r:02d}"
                out.loc[index, f"{m}:{r}"] = _mean(group, column)
            collapsed = bool(row.get("n_collapsed", 0))  # a (partly) constant predictor has no robustness
            robustness = _mean(group, modality_robustness_metric(m))
            out.loc[index, f"robustness:{m}"] = float("nan") if collapsed else robustness
    return ModalityMissing(metric, modalities, rates, out)


def _mean(group: pd.DataFrame, column: str) -> float:
    values = group[column].dropna() if column in group else ()
    return float(values.mean()) if len(values) else float("nan")
