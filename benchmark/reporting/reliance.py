"""Modality reliance in the report: per configuration and modality, the mean over seeds of the drop in
the ranking metric when that modality is permuted across the test rows ("reliance_permuted.<m>",
benchmark/train/reliance.py defines it), next to the drop when it is removed (the full-input score
minus the score of the subset of every other modality, "test_<metric>_subset.<others>", already
logged), both positive = worse; and the mean over seeds of each modality's reliance share and of the
equity index. Runs logged before these metrics existed have none: the report then leaves reliance out."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from benchmark.reporting.analysis import DatasetAnalysis, leading_configurations
from benchmark.vocabulary import (RELIANCE_EQUITY, SUBSET_SEPARATOR, metric_name, reliance_metric, reliance_modality,
                                    reliance_share_metric, subset_prefix)


@dataclass
class RelianceTable:
    """The reliance of one dataset's configurations. ``configs`` is ``a.ranked`` (same order and index)
    with columns "permuted:<m>", "removed:<m>", "share:<m>" per modality and "equity": means over the
    seeds that logged them (NaN where none did)."""

    modalities: list[str]
    configs: pd.DataFrame = field(default_factory=pd.DataFrame)

    def shown(self, k: int = 5) -> pd.DataFrame:
        """The table's rows: the best configuration (ranked order, any training dropout) of each of the k
        best fused strategies, and the best `concat` configuration."""
        return leading_configurations(self.configs, k)


def reliance_modalities(runs: pd.DataFrame) -> list[str]:
    """The modalities some run logged a permutation reliance for, sorted."""
    return sorted({m for c in runs.columns if (m := reliance_modality(c)) and runs[c].notna().any()})


def reliance_table(a: DatasetAnalysis) -> RelianceTable | None:
    """The reliance of ``a``'s ranked configurations, or None when no run logged it."""
    runs, ranked = a.runs, a.ranked
    modalities = reliance_modalities(runs) if not runs.empty else []
    if ranked.empty or not modalities:
        return None
    sign = 1.0 if a.higher_is_better else -1.0
    full = metric_name(a.ranking)
    removed = {}  # modality -> per-run drop when it is removed (NaN where a score is not logged)
    for m in modalities:
        others = subset_prefix(a.ranking) + SUBSET_SEPARATOR.join(x for x in modalities if x != m)
        removed[m] = sign * (_column(runs, full) - _column(runs, others))  # with one modality: nothing is left, NaN
    runs = runs.assign(**{f"removed:{m}": v for m, v in removed.items()})
    groups = dict(list(runs.groupby(["variant", "dropout"])))
    out = ranked.copy()
    for index, row in ranked.iterrows():
        group = groups.get((row["variant"], row["dropout"]), runs.iloc[0:0])
        for m in modalities:
            out.loc[index, f"permuted:{m}"] = _mean(group, reliance_metric(m))
            out.loc[index, f"removed:{m}"] = _mean(group, f"removed:{m}")
            out.loc[index, f"share:{m}"] = _mean(group, reliance_share_metric(m))
        out.loc[index, "equity"] = _mean(group, RELIANCE_EQUITY)
    return RelianceTable(modalities, out)


def _column(runs: pd.DataFrame, name: str) -> pd.Series:
    return runs[name] if name in runs else pd.Series(float("nan"), index=runs.index)


def _mean(group: pd.DataFrame, column: str) -> float:
    values = group[column].dropna() if column in group else ()
    return float(values.mean()) if len(values) else float("nan")

