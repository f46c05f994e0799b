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
    p_holm: float = float("nan")  # p adjusted by Holm over all of the dataset's comparisons (set by holm_tests)

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


# ------------------------------------------------------------------ multiple comparisons and ranks
def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order (Holm 1979). NaN p-values (no test
    possible) stay NaN and do not count towards the number of comparisons m."""
    valid = sorted((p, i) for i, p in enumerate(pvalues) if p is not None and p == p)
    adjusted = [float("nan")] * len(pvalues)
    running, m = 0.0, len(valid)
    for step, (p, i) in enumerate(valid):
        running = max(running, min(1.0, (m - step) * float(p)))  # monotone: never below an earlier step
        adjusted[i] = running
    return adjusted


def average_ranks(table: Sequence[Sequence[float]], higher_is_better: Sequence[bool] | bool = True
                  ) -> list[list[float]]:
    """Ranks within each row (one row per dataset, one column per strategy): 1 = best in the row's
    direction, ties get the average of the ranks they span."""
    from scipy.stats import rankdata

    rows = []
    for index, row in enumerate(table):
        higher = higher_is_better if isinstance(higher_is_better, bool) else higher_is_better[index]
        rows.append([float(r) for r in rankdata([-v if higher else v for v in row], method="average")])
    return rows


@dataclass
class Friedman:
    """Friedman test over N datasets x k strategies (Demsar 2006, section 3.2.2)."""

    n: int  # datasets
    k: int  # strategies
    mean_ranks: list[float]
    chi2: float  # Friedman's chi-square (scipy's, with the tie correction)
    p: float
    iman_davenport: float  # F_F = (N - 1) chi2 / (N (k - 1) - chi2), with (k - 1, (k - 1)(N - 1)) df
    p_iman_davenport: float
    note: str = ""  # why no test was possible, when it was not


def iman_davenport(chi2: float, n: int, k: int) -> float:
    """Iman and Davenport's F_F = (N - 1) chi2 / (N (k - 1) - chi2) from Friedman's chi-square over N
    datasets and k strategies (Demsar 2006, section 3.2.2); infinite where the same order on every
    dataset leaves no denominator."""
    denominator = n * (k - 1) - chi2
    return float("inf") if denominator <= 0 else (n - 1) * chi2 / denominator


def friedman(table: Sequence[Sequence[float]], higher_is_better: Sequence[bool] | bool = True) -> Friedman:
    """Friedman test of k strategies (columns) over N datasets (rows), on within-dataset ranks."""
    ranks = average_ranks(table, higher_is_better)
    n, k = len(ranks), len(ranks[0]) if ranks else 0
    mean_ranks = [sum(row[j] for row in ranks) / n for j in range(k)] if n else []
    nan = float("nan")
    if n < 2 or k < 3:
        why = f"{n} dataset(s)" if n < 2 else f"{k} strategies (the Friedman test needs at least 3)"
        return Friedman(n, k, mean_ranks, nan, nan, nan, nan, f"no test possible with {why}")
    if all(row == ranks[0] for row in ranks) and len(set(ranks[0])) == 1:
        return Friedman(n, k, mean_ranks, 0.0, 1.0, 0.0, 1.0, "every strategy tied on every dataset")
    from scipy import stats

    chi2, p = stats.friedmanchisquare(*[[row[j] for row in ranks] for j in range(k)])
    chi2 = float(chi2)
    f = iman_davenport(chi2, n, k)
    # the same order on every dataset: F_F is unbounded, its p 0
    pf = 0.0 if f == float("inf") else float(stats.f.sf(f, k - 1, (k - 1) * (n - 1)))
    return Friedman(n, k, mean_ranks, chi2, float(p), f, pf)


def nemenyi_cd(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference of average ranks: q_alpha sqrt(k (k + 1) / (6 N)), with q_alpha the
    studentized range quantile / sqrt 2 (Demsar 2006: k = 4 -> q_0.05 = 2.569)."""
    if k < 2 or n < 1:
        return float("nan")
    from scipy.stats import studentized_range

    q = float(studentized_range.ppf(1 - alpha, k, math.inf)) / math.sqrt(2)
    return q * math.sqrt(k * (k + 1) / (6 * n))


def wilcoxon_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired a - b (exact for small N); nan when every
    difference is zero (nothing to rank) or fewer than 2 pairs."""
    diffs = [float(x) - float(y) for x, y in zip(a, b) if x == x and y == y]
    if len(diffs) < 2 or all(abs(d) <= 1e-12 for d in diffs):
        return float("nan")
    from scipy import stats

    return float(stats.wilcoxon(diffs).pvalue)


def smallest_wilcoxon_p(n: int) -> float:
    """The smallest two-sided exact Wilcoxon signed-rank p-value N pairs can give (all differences one
    sign): 2 / 2^N. With N = 3 it is 0.25, so nothing can reach 0.05."""
    return min(1.0, 2.0 / 2 ** n) if n >= 1 else float("nan")


def holm_tests(tests: dict) -> dict:
    """Set `p_holm` on every PairedTest of one family of comparisons (Holm over those with a p-value)."""
    items = list(tests.values())
    for test, adjusted in zip(items, holm([t.p for t in items])):
        test.p_holm = adjusted
    return tests


# ------------------------------------------------------------------ Bayesian signed-rank test
SIGNED_RANK_PRIOR = 0.5  # baycomp's default weight of the Dirichlet process's pseudo-observation at 0


def bayesian_signed_rank(diffs: Sequence[float], rope: float, nsamples: int = 50000, seed: int = 0,
                         prior: float = SIGNED_RANK_PRIOR) -> tuple[float, float, float]:
    """(P(left), P(rope), P(right)) of the Bayesian signed-rank test (Benavoli, Mangili, Corani, Zaffalon
    and Ruggeri 2014) on paired differences `diffs` (here strategy minus baseline, turned so that positive
    is better) with a region of practical equivalence [-rope, rope].

    The same model, prior and random draws as baycomp 1.0.3's `SignedRankTest(x, y, rope, prior=0.5,
    nsamples, random_state=seed)` with diffs = y - x: the posterior of the Dirichlet process over the
    differences (a pseudo-observation at 0 of weight `prior`) is sampled `nsamples` times; in each sample
    the weight of the Walsh averages below -rope, inside and above +rope is computed, and each probability
    is the share of samples in which that region weighs most. baycomp loops in Python over the samples
    (about 0.75 s per comparison, and a report makes hundreds); this evaluates the same quadratic forms
    for all samples at once. tests/test_bayesian.py checks it against baycomp draw for draw."""
    import numpy as np

    d = np.asarray(_clean(diffs), dtype=float)
    if rope <= 0 or rope != rope:
        raise ValueError(f"the region of practical equivalence must be positive, got {rope}")
    if len(d) == 0:
        raise ValueError("the Bayesian signed-rank test needs at least one difference")
    values = np.hstack(([0.0], d))
    sums = values[:, None] + values[None, :]  # (n+1, n+1): twice the Walsh averages
    above = (sums > 2 * rope) + 0.5 * (sums == 2 * rope)
    below = (-sums > 2 * rope) + 0.5 * (-sums == 2 * rope)
    weights = np.ones(len(values))
    weights[0] = prior
    draws = np.random.RandomState(seed).dirichlet(weights, nsamples)  # (nsamples, n+1)
    left = ((draws @ below) * draws).sum(axis=1)  # w' B w for every sample w
    right = ((draws @ above) * draws).sum(axis=1)
    sample = np.stack([left, 1 - left - right, right], axis=1)
    winners = np.bincount(np.argmax(sample, axis=1), minlength=3) / nsamples
    return float(winners[0]), float(winners[1]), float(winners[2])
