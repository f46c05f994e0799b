"""Small statistics for the report: mean with a 95% t confidence interval, a paired t-test,
and the Pareto front of (cost, accuracy) points. Plain numbers in, plain numbers out."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


def _clean(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and v == v]


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of the two-sided 95% t confidence interval over the values.

    The half-width is t(0.975, n-1) * sd / sqrt(n) with the sample standard deviation
    (n-1 denominator); it is nan when fewer than two values are given."""
    xs = _clean(values)
    if not xs:
        return float("nan"), float("nan")
    mean = sum(xs) / len(xs)
    if len(xs) < 2:
        return mean, float("nan")
    from scipy import stats

    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
    return mean, float(stats.t.ppf(0.975, len(xs) - 1) * sd / math.sqrt(len(xs)))


@dataclass
class PairedTest:
    """Paired t-test of a - b over matched pairs (here: the same seed)."""

    n: int
    mean_diff: float
    ci_half: float  # 95% t-interval half-width of the mean difference
    t: float
    df: int
    p: float  # two-sided
    note: str = ""  # why no test was possible, when it was not

    @property
    def name(self) -> str:
        return "paired t-test"


def paired_ttest(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Two-sided paired t-test of the differences a[i] - b[i] (pairs with a missing side are dropped)."""
    diffs = [float(x) - float(y) for x, y in zip(a, b) if x == x and y == y]
    n = len(diffs)
    if n == 0:
        return PairedTest(0, float("nan"), float("nan"), float("nan"), 0, float("nan"), "no matched seeds")
    mean, half = mean_ci95(diffs)
    if n < 2:
        return PairedTest(1, mean, float("nan"), float("nan"), 0, float("nan"), "1 matched seed: no test possible")
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    if sd <= 1e-12 * max(1.0, abs(mean)):  # equal up to rounding: no spread to test against
        return PairedTest(n, mean, 0.0, float("nan"), n - 1, float("nan"),
                          "identical differences on every seed: t undefined")
    from scipy import stats

    t = mean / (sd / math.sqrt(n))
    return PairedTest(n, mean, half, t, n - 1, float(2 * stats.t.sf(abs(t), n - 1)))


def pareto_front(cost: Sequence[float], accuracy: Sequence[float], lower_cost_is_better: bool) -> list[bool]:
    """For each point, whether no other point is at least as good on both axes and strictly
    better on one. Points with a nan coordinate are never on the front."""
    points = [(c if lower_cost_is_better else -c, -a) for c, a in zip(cost, accuracy)]  # minimise both
    on_front = []
    for i, (c, a) in enumerate(points):
        if c != c or a != a:
            on_front.append(False)
            continue
        dominated = any(
            j != i and oc == oc and oa == oa and oc <= c and oa <= a and (oc < c or oa < a)
            for j, (oc, oa) in enumerate(points))
        on_front.append(not dominated)
    return on_front
