"""Calibration under missingness in the report: per configuration, the mean over seeds of ECE, NLL
and Brier score on the full input and at each test-time missing rate, read from the `test_<c>` and
`test_<c>_missing.NN` metrics (benchmark/train/calibration.py defines them). Runs logged before
these metrics existed, and regression runs, have none: the report then leaves calibration out."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from benchmark.reporting.analysis import DatasetAnalysis, leading_configurations
from benchmark.vocabulary import CALIBRATION_METRICS, metric_name, missing_metric, missing_prefix

MIDDLE_RATE = 50  # percent: the table's and the verdict's "half the inputs missing" column


@dataclass
class CalibrationCurves:
    """The calibration of one dataset's configurations. ``configs`` is ``a.ranked`` (same order and
    index) with columns "<c>:full" and "<c>:<rate>" (rate in percent) for c in ece, nll, brier: the
    mean over the seeds that logged it (NaN where none did)."""

    rates: list[int]  # percent, 0 first
    configs: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def middle_rate(self) -> int:
        """MIDDLE_RATE where the curve has it, else its middle rate."""
        return MIDDLE_RATE if MIDDLE_RATE in self.rates else self.rates[len(self.rates) // 2]

    def shown(self, k: int = 5) -> pd.DataFrame:
        """The rows the table and figure show: the best configuration (ranked order, any training dropout)
        of each of the k best fused strategies, and the best `concat` configuration."""
        return leading_configurations(self.configs, k)


def _rates(runs: pd.DataFrame) -> list[int]:
    """Rates (percent) at which some run logged test ECE."""
    prefix = missing_prefix("ece")
    return sorted(int(c[len(prefix):]) for c in runs.columns
                  if c.startswith(prefix) and c[len(prefix):].isdigit() and runs[c].notna().any())


def calibration_curves(a: DatasetAnalysis) -> CalibrationCurves | None:
    """The calibration of ``a``'s ranked configurations, or None when no run logged it."""
    runs, ranked = a.runs, a.ranked
    if runs.empty or ranked.empty or metric_name("ece") not in runs or not runs[metric_name("ece")].notna().any():
        return None
    rates = _rates(runs)
    if not rates:
        return None
    groups = dict(list(runs.groupby(["variant", "dropout"])))
    out = ranked.copy()
    for index, row in ranked.iterrows():
        group = groups.get((row["variant"], row["dropout"]), runs.iloc[0:0])
        for c in CALIBRATION_METRICS:
            out.loc[index, f"{c}:full"] = _mean(group, metric_name(c))
            for r in rates:
                out.loc[index, f"{c}:{r}"] = _mean(group, missing_metric(r / 100, missing_prefix(c)))
    return CalibrationCurves(rates, out)


def _mean(group: pd.DataFrame, column: str) -> float:
    values = group[column].dropna() if column in group else ()
    return float(values.mean()) if len(values) else float("nan")
