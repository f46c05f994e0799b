"""Intervals and paired comparisons that count the test set's sampling as well as the seeds.

A configuration's score is a mean over seeds of a metric measured on one set of test rows; a
different draw of test rows would move it as much as a different seed does, or more (120 test rows
move accuracy by about +-0.03). With the per-row predictions each run logged
(vocabulary.PREDICTIONS_ARTIFACT), a paired bootstrap resamples both: in each of DRAWS draws the test
rows are drawn with replacement (one draw for every configuration and seed: the rows pair across
them) and the seeds are drawn with replacement; the metric is recomputed on the drawn rows
(reporting/row_metrics.py), averaged over the drawn seeds. Under k-fold cross-validation the rows and
seeds are drawn within each fold (the seeds of one fold share its test rows: nested, never pooled) and
the folds are averaged. A comparison of two configurations draws the same rows and the same seeds
for both. The 95% interval is the draws' 2.5 and 97.5 percentiles; the two-sided p-value is twice
the share of draws on the far side of zero.

Where some run of a configuration has no per-row predictions (runs recorded before they were
logged), its interval and comparisons fall back to the seeds only: a t-interval and a paired t-test
over seeds, or with k-fold over the folds' means (seeds nested in folds), and the Basis says so."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import pandas as pd

from benchmark.reporting.analysis import BASELINE, DatasetAnalysis, metric_spec
from benchmark.reporting.replicates import uses_folds
from benchmark.reporting.row_metrics import ROW_METRICS
from benchmark.reporting.row_predictions import FULL, PredictionStore
from benchmark.reporting.stats import holm, mean_ci95, paired_ttest
from benchmark.vocabulary import FOLD, missing_metric, missing_prefix

DRAWS = 1000  # bootstrap draws
SEED = 24  # of the bootstrap's random draws: a report is the same every time it is built


class Basis(Enum):
    """What an interval or a comparison counts."""

    ROWS_AND_SEEDS = "rows_and_seeds"  # paired bootstrap over test rows and seeds (within folds)
    SEEDS_ONLY = "seeds_only"  # no per-row predictions: seeds only (with k-fold: the folds' means)


@dataclass(frozen=True)
class Interval:
    """An estimate with its 95% interval [low, high] and what n counts: seeds (matched seeds, for a
    comparison) per fold, folds (0 without k-fold), test rows (all folds together; 0 for seeds only)."""

    mean: float
    low: float
    high: float
    basis: Basis
    seeds: int
    folds: int = 0
    rows: int = 0

    @property
    def half(self) -> float:
        return (self.high - self.low) / 2


@dataclass(frozen=True)
class Comparison:
    """``a`` minus ``b`` (configurations as (variant, dropout)) on one condition, with its interval and
    two-sided p-value (the bootstrap's, or the paired t-test's for SEEDS_ONLY)."""

    a: tuple[str, str]
    b: tuple[str, str]
    diff: Interval
    p: float
    note: str = ""  # why no p-value, when there is none
    p_holm: float = float("nan")  # set where a family of comparisons is adjusted
    statistic: str = ""  # the t-test's "t(2) = 1.73" (SEEDS_ONLY)


@dataclass(frozen=True)
class PickLead:
    """A pick of "Which strategy to use" with its interval, and its lead over the runner-up on the
    same criterion (positive = the pick is better, whatever the metric's direction)."""

    score: Interval
    runner_up: tuple[str, str] | None = None
    runner_up_score: float = float("nan")
    lead: Comparison | None = None
    higher_is_better: bool = True

    @property
    def significant(self) -> bool:
        return self.lead is not None and self.lead.p == self.lead.p and self.lead.p < 0.05


@dataclass(frozen=True)
class DatasetUncertainty:
    basis: Basis  # ROWS_AND_SEEDS only when every finished run logged its per-row predictions
    draws: int
    runs_without_rows: int  # finished runs with no per-row predictions
    baseline: dict = field(default_factory=dict)  # (variant, dropout) -> Comparison with BASELINE, Holm-adjusted
    intervals: dict = field(default_factory=dict)  # (variant, dropout) -> Interval of the ranking metric
    best: PickLead | None = None
    when_missing: PickLead | None = None
    within_budget: PickLead | None = None


def _key(row) -> tuple[str, str]:
    return str(row["variant"]), str(row["dropout"])


class Bootstrap:
    """The draws of one dataset: one row resample per fold shared by every configuration, one seed
    resample per fold shared likewise; per-run metric draws are cached."""

    def __init__(self, a: DatasetAnalysis, store: PredictionStore | None, draws: int = DRAWS, seed: int = SEED):
        self.a, self.store, self.draws = a, store, draws
        self.rng = np.random.default_rng(seed)
        self.folds = uses_folds(a.runs)
        self._weights: dict = {}
        self._seed_draws: dict = {}
        self._truth: dict = {}
        self._values: dict = {}

    # ------------------------------------------------------------ the runs of a configuration
    def runs_of(self, config: tuple[str, str]) -> dict:
        """fold (None without k-fold) -> seed -> run id."""
        runs = self.a.runs
        here = runs[(runs["variant"].astype(str) == config[0]) & (runs["dropout"].astype(str) == config[1])]
        out: dict = {}
        for _, r in here.iterrows():
            fold = int(r[FOLD]) if self.folds and r.get(FOLD) == r.get(FOLD) else None
            out.setdefault(fold, {})[int(r["seed"])] = r["run_id"]
        return out

    def _rows(self, run_id, condition: str):
        if self.store is None or not isinstance(run_id, str):
            return None
        rows = self.store.get(run_id)
        if rows is None or condition not in rows.conditions:
            return None
        return rows

    def has_rows(self, config: tuple[str, str], condition: str) -> bool:
        return all(self._rows(run, condition) is not None
                   for seeds in self.runs_of(config).values() for run in seeds.values())

    # ------------------------------------------------------------ the draws
    def _fold_weights(self, fold, truth: np.ndarray) -> np.ndarray | None:
        """(1 + DRAWS, N) row weights of the fold: a line of ones (the split itself), then the resamples.
        None when this run's rows are not the fold's (another split: no pairing possible)."""
        if fold not in self._weights:
            n = len(truth)
            counts = self.rng.multinomial(n, np.full(n, 1.0 / n), size=self.draws).astype(np.float32)
            self._weights[fold] = np.vstack([np.ones((1, n), np.float32), counts])
            self._truth[fold] = truth
        known = self._truth[fold]
        return self._weights[fold] if known.shape == truth.shape and np.array_equal(known, truth) else None

    def _seed_index(self, fold, seeds: int) -> np.ndarray:
        """(DRAWS, seeds) indices into a sorted list of ``seeds`` seeds; the same uniform draws for every
        configuration, so two with the same seeds draw the same ones."""
        if fold not in self._seed_draws:
            self._seed_draws[fold] = self.rng.random((self.draws, 64))
        return np.minimum((self._seed_draws[fold][:, :seeds] * seeds).astype(int), seeds - 1)

    def _run_values(self, run_id: str, fold, condition: str, metric: str) -> np.ndarray | None:
        """(1 + DRAWS,) the run's metric on the split, then on each row resample."""
        key = (run_id, condition, metric)
        if key not in self._values:
            rows = self._rows(run_id, condition)
            weights = self._fold_weights(fold, rows.truth) if rows is not None else None
            function = ROW_METRICS.get(metric)
            self._values[key] = None if weights is None or function is None else np.asarray(
                function(rows.task, rows.conditions[condition], rows.truth, weights), dtype=float)
        return self._values[key]

    def _draws(self, configs: list[tuple[str, str]], condition: str, metric: str):
        """Per configuration (1 + DRAWS,) draws of its nested mean (seeds in folds; for several
        configurations on their matched seeds), and (seeds, folds, rows); None when some run lacks rows."""
        by_config = [self.runs_of(c) for c in configs]
        folds = sorted(set.intersection(*[set(r) for r in by_config]), key=lambda f: -1 if f is None else f)
        if not folds:
            return None
        totals = [np.zeros(1 + self.draws) for _ in configs]
        seeds_used, rows = [], 0
        for fold in folds:
            seeds = sorted(set.intersection(*[set(r[fold]) for r in by_config]))
            if not seeds:
                return None
            index = np.vstack([np.arange(len(seeds))[None, :],
                               self._seed_index(fold, len(seeds))])  # (1 + DRAWS, seeds): first line all seeds
            for k, runs in enumerate(by_config):
                values = [self._run_values(runs[fold][s], fold, condition, metric) for s in seeds]
                if any(v is None for v in values):
                    return None
                stacked = np.stack(values, axis=1)  # (1 + DRAWS, seeds)
                totals[k] += np.take_along_axis(stacked, index, axis=1).mean(axis=1)
            seeds_used.append(len(seeds))
            rows += len(self._truth[fold])
        return [t / len(folds) for t in totals], (min(seeds_used), len(folds) if self.folds else 0, rows)

    # ------------------------------------------------------------ what the report asks
    def interval(self, config: tuple[str, str], condition: str, metric: str, column: str) -> Interval | None:
        drawn = self._draws([config], condition, metric) if self.store is not None else None
        if drawn is None:
            return self._seed_interval(config, column)
        (values,), (seeds, folds, rows) = drawn
        low, high = np.nanpercentile(values[1:], [2.5, 97.5])
        return Interval(float(values[0]), float(low), float(high), Basis.ROWS_AND_SEEDS, seeds, folds, rows)

    def compare(self, a: tuple[str, str], b: tuple[str, str], condition: str, metric: str,
                column: str) -> Comparison:
        drawn = self._draws([a, b], condition, metric) if self.store is not None else None
        if drawn is None:
            return self._seed_comparison(a, b, column)
        (va, vb), (seeds, folds, rows) = drawn
        diff = va - vb
        d = diff[1:][np.isfinite(diff[1:])]
        low, high = np.percentile(d, [2.5, 97.5]) if len(d) else (math.nan, math.nan)
        if len(d) == 0:
            p, note = math.nan, "no finite bootstrap draw"
        elif np.all(d == 0):
            p, note = 1.0, ""
        else:
            far = min(np.sum(d <= 0), np.sum(d >= 0))
            p, note = min(1.0, 2 * (1 + far) / (1 + len(d))), ""
        return Comparison(a, b, Interval(float(diff[0]), float(low), float(high), Basis.ROWS_AND_SEEDS, seeds, folds,
                                         rows), float(p), note)

    # ------------------------------------------------------------ the fallback: seeds only, nested in folds
    def _replicate_values(self, config: tuple[str, str], column: str) -> pd.Series:
        runs = self.a.runs
        here = runs[(runs["variant"].astype(str) == config[0]) & (runs["dropout"].astype(str) == config[1])]
        if column not in here:
            return pd.Series(dtype=float)
        keys = [FOLD, "seed"] if self.folds else ["seed"]
        return here.groupby(keys)[column].mean().dropna()

    def _seed_interval(self, config: tuple[str, str], column: str) -> Interval | None:
        values = self._replicate_values(config, column)
        if values.empty:
            return None
        if self.folds:  # seeds nested in folds: the folds' means are the replicates
            by_fold = values.groupby(level=0).mean()
            mean, half = mean_ci95(by_fold.tolist())
            seeds, folds = int(values.groupby(level=0).size().min()), len(by_fold)
        else:
            mean, half = mean_ci95(values.tolist())
            seeds, folds = len(values), 0
        return Interval(mean, mean - half, mean + half, Basis.SEEDS_ONLY, seeds, folds)

    def _seed_comparison(self, a, b, column: str) -> Comparison:
        va, vb = self._replicate_values(a, column), self._replicate_values(b, column)
        both = va.index.intersection(vb.index)
        diffs = (va.loc[both] - vb.loc[both])
        folds = 0
        if self.folds and len(diffs):
            folds = int(diffs.groupby(level=0).ngroups)
            seeds = int(diffs.groupby(level=0).size().min())
            diffs = diffs.groupby(level=0).mean()  # one paired difference per fold
        else:
            seeds = len(diffs)
        test = paired_ttest(diffs.tolist(), [0.0] * len(diffs))
        return Comparison(a, b, Interval(test.mean_diff, test.mean_diff - test.ci_half, test.mean_diff + test.ci_half,
                                         Basis.SEEDS_ONLY, seeds, folds), test.p, test.note,
                          statistic=f"t({test.df}) = {test.t:.2f}" if test.t == test.t else "")


# ------------------------------------------------------------------ the dataset's picks
def condition_of(metric: str, rate: int | None) -> tuple[str, str]:
    """(prediction condition, MLflow metric column) of ``metric`` on the full input or at ``rate`` %."""
    if rate is None:
        return FULL, metric_spec(metric)[0]
    return f"{rate:02d}", missing_metric(rate / 100, missing_prefix(metric))


def _pick_lead(boot: Bootstrap, pick: tuple[str, str], candidates: pd.DataFrame, score_column: str, metric: str,
               rate: int | None, higher: bool) -> PickLead | None:
    """The pick's interval and its lead over the best other candidate on ``score_column`` (a configs column)."""
    condition, column = condition_of(metric, rate)
    score = boot.interval(pick, condition, metric, column)
    if score is None:
        return None
    others = candidates[[_key(r) != pick for _, r in candidates.iterrows()]] if len(candidates) else candidates
    others = others[others[score_column].notna()] if len(others) else others
    if others.empty:
        return PickLead(score, higher_is_better=higher)
    second = others.loc[others[score_column].idxmax() if higher else others[score_column].idxmin()]
    comparison = boot.compare(pick, _key(second), condition, metric, column)
    if not higher:  # a lead is positive when the pick is better
        d = comparison.diff
        comparison = Comparison(comparison.a, comparison.b, Interval(-d.mean, -d.high, -d.low, d.basis, d.seeds, d.folds,
                                                                     d.rows), comparison.p, comparison.note,
                                statistic=comparison.statistic)
    return PickLead(score, _key(second), float(second[score_column]), comparison, higher)


def dataset_uncertainty(a: DatasetAnalysis, store: PredictionStore | None, best=None, when_missing=None,
                        within_budget=None, draws: int = DRAWS) -> DatasetUncertainty:
    """The dataset's comparisons with BASELINE (Holm over them) and each pick's interval and lead. The
    picks are the verdicts' (reporting/verdicts.py: BestOverall, WhenMissing, WithinBudget; None where
    none was named)."""
    boot = Bootstrap(a, store, draws)
    ranked, metric = a.ranked, a.ranking
    full, column = condition_of(metric, None)
    without = 0
    if store is not None and "run_id" in a.runs:
        without = sum(1 for run in a.runs["run_id"] if boot._rows(run, FULL) is None)
    elif len(a.runs):
        without = len(a.runs)
    basis = Basis.ROWS_AND_SEEDS if store is not None and without == 0 and len(a.runs) else Basis.SEEDS_ONLY
    intervals = {}
    for _, r in ranked.iterrows():
        interval = boot.interval(_key(r), full, metric, column)
        if interval is not None:
            intervals[_key(r)] = interval
    baseline = {}
    for _, r in ranked[ranked["variant"] != BASELINE].iterrows():
        base = (BASELINE, str(r["dropout"]))
        if not ((ranked["variant"] == BASELINE) & (ranked["dropout"].astype(str) == base[1])).any():
            continue
        baseline[_key(r)] = boot.compare(_key(r), base, full, metric, column)
    adjusted = holm([c.p for c in baseline.values()])
    baseline = {k: Comparison(c.a, c.b, c.diff, c.p, c.note, p, c.statistic)
                for (k, c), p in zip(baseline.items(), adjusted)}
    picks = {}
    if best is not None and best.config is not None:
        pick = (best.config.variant, str(best.config.dropout))
        picks["best"] = _pick_lead(boot, pick, a.trusted, a.score, metric, None, a.higher_is_better)
    if when_missing is not None and when_missing.config is not None and when_missing.rate is not None:
        pick = (when_missing.config.variant, str(when_missing.config.dropout))
        picks["when_missing"] = _pick_lead(boot, pick, a.trusted, f"missing:{when_missing.rate}", a.curve_metric,
                                           when_missing.rate, a.curve_higher_is_better)
    if within_budget is not None and within_budget.config is not None:
        usable = ranked[ranked["infer_sps"].notna()]
        fast = usable[(usable["infer_sps"] >= within_budget.median_throughput) & ~usable["marked"]]
        pick = (within_budget.config.variant, str(within_budget.config.dropout))
        picks["within_budget"] = _pick_lead(boot, pick, fast, a.score, metric, None, a.higher_is_better)
    return DatasetUncertainty(basis, draws, without, baseline, intervals, **picks)


# ------------------------------------------------------------------ in words
def counted(i: Interval, draws: int = DRAWS) -> str:
    """What an interval counts and what n is: "paired bootstrap over 120 test rows and 3 seeds (1,000
    draws)"; with k-fold "... over the test rows of 5 folds (600 rows) with 3 seeds nested in each fold";
    seeds only: "t-interval over 3 seeds only (no per-row test predictions logged: test-set sampling not
    counted)"."""
    if i.basis is Basis.ROWS_AND_SEEDS:
        if i.folds:
            return (f"bootstrap over the test rows of {i.folds} folds ({i.rows:,} rows) with {i.seeds} seed(s) "
                    f"nested in each fold, {draws:,} draws")
        return f"bootstrap over {i.rows:,} test rows and {i.seeds} seed(s), {draws:,} draws"
    if i.folds:
        return (f"t-interval over the means of {i.folds} folds ({i.seeds} seed(s) nested in each) only: no per-row "
                "test predictions logged, so test-set sampling is not counted")
    return (f"t-interval over {i.seeds} seed(s) only: no per-row test predictions logged, so test-set sampling is "
            "not counted")


def interval_text(i: Interval, signed: bool = False) -> str:
    """"0.786 [0.722, 0.842]"."""
    f = "{:+.3f}" if signed else "{:.3f}"
    if i.low != i.low:
        return f.format(i.mean) + " (no interval)"
    return f"{f.format(i.mean)} [{f.format(i.low)}, {f.format(i.high)}]"


def p_text(p: float) -> str:
    return "n/a" if p != p else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def lead_text(lead: PickLead | None) -> str:
    """The sentence a pick carries: its 95% interval, and its lead over the runner-up with whether it is
    significant, each saying what it counts."""
    if lead is None:
        return ""
    text = f" 95% interval {interval_text(lead.score)} ({counted(lead.score)})."
    if lead.lead is None:
        return text + " No other candidate to compare it with."
    c = lead.lead
    runner = f"`{lead.runner_up[0]}` (train dropout {lead.runner_up[1]})"
    test = "paired bootstrap" if c.diff.basis is Basis.ROWS_AND_SEEDS else "paired t-test"
    if c.p != c.p:
        return text + f" Lead over the runner-up {runner}: {interval_text(c.diff, True)}; no test possible ({c.note})."
    verdict = "significant" if lead.significant else "not significant"
    return text + (f" Lead over the runner-up {runner}: {interval_text(c.diff, True)}, {test} p = {p_text(c.p)} "
                   f"({counted(c.diff)}): {verdict} at 0.05 (unadjusted for having picked the top two).")
