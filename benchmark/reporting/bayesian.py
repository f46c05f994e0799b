"""Bayesian comparisons with `concat` (BASELINE) as verdict data: for each strategy, the posterior
probabilities that it is worse than `concat`, practically equivalent to it, or better, by more than a
region of practical equivalence (ROPE). A p-value says how surprising the data would be if there were no
difference at all; these say how probable each of the three outcomes is given the data, which stays
usable with few datasets, where no frequentist test across datasets can reach p < 0.05 (Benavoli, Corani,
Demsar and Zaffalon 2017, "Time for a change").

The test is the Bayesian signed-rank test (Benavoli et al. 2014) as baycomp 1.0.3 implements it
(reporting/stats.py, `bayesian_signed_rank`; prior weight 0.5 at a difference of 0, 50,000 posterior
samples drawn from a fixed seed, so a report rebuilt from the same store gives the same numbers):

- Across datasets: one paired value per dataset, the strategy's score minus `concat`'s, each the mean of
  the dataset's ranking metric over every seed and training dropout rate (the scores of the cross-dataset
  ranks, reporting/crossdataset.py), turned so that positive is better and divided by the dataset's ROPE,
  so that datasets ranked by different metrics combine and the ROPE is 1 on every dataset.
- Per dataset: each configuration against `concat` at the same training dropout, paired by seed; under
  k-fold the (fold, seed) differences are averaged over the seeds of each fold first (the seeds of one
  fold share its test rows, so they are not independent), and the test runs over the folds. These
  probabilities count seed-to-seed (or fold-to-fold) variation only, not the sampling of the test rows.

The ROPE is 1 point of the ranking metric: 0.01 on metrics that live on a 0-1 scale (accuracy, F1,
AUROC, mAP; also Pearson r). An error metric (MAE, RMSE: lower is better, in the target's own units) has
no such scale: its ROPE is 1% of the constant predictor's (the training mean's) value of that metric on
the dataset, or 1% of `concat`'s mean where that reference was not logged; its differences are turned
(concat minus strategy) so that positive is still better.

Why not baycomp's hierarchical test (Corani et al. 2017), which would model the seeds within datasets:
in baycomp 1.0.3 it needs pystan (not a fusebench dependency; it compiles a Stan model, minutes), writes
`last-sample.pickle` into the working directory, and does not pass its seed to Stan, so the report would
not rebuild byte-identically; and its correlation model (rho = 1 / folds) describes repeated
cross-validation, not seeds sharing one fixed test split. The signed-rank test on dataset means is used
instead, and the report says so."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import pandas as pd

from benchmark.reporting.analysis import BASELINE, DatasetAnalysis, metric_spec
from benchmark.reporting.crossdataset import CrossDataset
from benchmark.reporting.replicates import replicate_keys, uses_folds
from benchmark.reporting.stats import bayesian_signed_rank
from benchmark.vocabulary import FOLD

ROPE_POINTS = 0.01  # one point of a 0-1 metric
ROPE_SHARE = 0.01  # of the reference value, for an error metric
NSAMPLES = 50000  # baycomp's default number of posterior samples
SEED = 0  # every comparison draws its samples from this seed: the same store gives the same report
MIN_PAIRS = 2  # below this many paired values no comparison is made (the prior would be most of the posterior)


class Unit(Enum):
    """What one paired value of a comparison is."""

    DATASETS = "datasets"  # one mean per dataset
    SEEDS = "seeds"  # one run per seed on a fixed split
    FOLDS = "folds"  # one mean over the seeds per fold (k-fold)


class RopeBasis(Enum):
    """How a dataset's ROPE was set."""

    POINT = "point"  # 0.01 on a 0-1 metric
    REFERENCE = "reference"  # 1% of the constant predictor's value of the error metric
    BASELINE_SCORE = "baseline_score"  # 1% of concat's mean (no reference predictor logged)


class NoComparison(Enum):
    """Why a strategy (or a whole table) has no probabilities."""

    NO_BASELINE = "no_baseline"  # no concat run to pair with
    TOO_FEW_PAIRS = "too_few_pairs"  # fewer than MIN_PAIRS paired values
    NO_ROPE = "no_rope"  # an error metric with neither a reference value nor a concat score


@dataclass(frozen=True)
class Rope:
    dataset: str
    metric: str  # the ranking metric's key
    width: float  # in the metric's own units
    basis: RopeBasis | None  # None with NoComparison.NO_ROPE


@dataclass(frozen=True)
class BayesComparison:
    """One strategy (across datasets) or configuration (per dataset) against concat."""

    variant: str
    dropout: object = None  # the training dropout per dataset; None across datasets
    n: int = 0  # paired values (datasets, seeds or folds)
    mean_diff: float = float("nan")  # mean paired difference, positive = better; across datasets in ROPEs
    p_worse: float = float("nan")
    p_equivalent: float = float("nan")
    p_better: float = float("nan")
    why_none: NoComparison | None = None


@dataclass(frozen=True)
class BayesComparisons:
    """Every comparison with concat of one view: across datasets, or within one dataset."""

    unit: Unit
    ropes: tuple[Rope, ...]  # per dataset
    comparisons: tuple[BayesComparison, ...] = ()  # best first across datasets; the leaderboard's order per dataset
    why_none: NoComparison | None = None  # no comparison at all
    n: int = 0  # paired values available (datasets across them; the most per configuration within one)
    nsamples: int = NSAMPLES
    seed: int = SEED
    prior: float = 0.5

    @property
    def rope_units(self) -> float:
        """The ROPE in the units of `mean_diff`: 1 across datasets (differences in ROPEs), else the dataset's."""
        return 1.0 if self.unit is Unit.DATASETS else self.ropes[0].width


def rope_of(a: DatasetAnalysis) -> Rope:
    """The dataset's ROPE in its ranking metric's units (module docstring)."""
    if a.higher_is_better:
        return Rope(a.name, a.ranking, ROPE_POINTS, RopeBasis.POINT)
    reference = a.reference_score
    if reference == reference and reference > 0:
        return Rope(a.name, a.ranking, ROPE_SHARE * reference, RopeBasis.REFERENCE)
    base = a.configs[(a.configs["variant"] == BASELINE) & (a.configs["n"] > 0)] if len(a.configs) else a.configs
    score = float(base[a.score].mean()) if len(base) else float("nan")
    if score == score and score > 0:
        return Rope(a.name, a.ranking, ROPE_SHARE * score, RopeBasis.BASELINE_SCORE)
    return Rope(a.name, a.ranking, float("nan"), None)


def compare(variant: str, diffs: list[float], rope: float, dropout=None) -> BayesComparison:
    """The signed-rank test of one strategy's paired differences (positive = better) against concat."""
    diffs = [d for d in diffs if d == d]
    if len(diffs) < MIN_PAIRS:
        return BayesComparison(variant, dropout, len(diffs), why_none=NoComparison.TOO_FEW_PAIRS)
    worse, equivalent, better = bayesian_signed_rank(diffs, rope, NSAMPLES, SEED)
    return BayesComparison(variant, dropout, len(diffs), sum(diffs) / len(diffs), worse, equivalent, better)


def across_datasets(x: CrossDataset, analyses: list[DatasetAnalysis]) -> BayesComparisons:
    """Each compared strategy against concat over the datasets, in the cross-dataset ranks' order."""
    ropes = tuple(rope_of(a) for a in analyses if a.name in x.datasets)
    if BASELINE not in x.variants:
        return BayesComparisons(Unit.DATASETS, ropes, why_none=NoComparison.NO_BASELINE, n=x.n)
    if x.n < MIN_PAIRS:
        return BayesComparisons(Unit.DATASETS, ropes, why_none=NoComparison.TOO_FEW_PAIRS, n=x.n)
    if any(r.basis is None for r in ropes):
        return BayesComparisons(Unit.DATASETS, ropes, why_none=NoComparison.NO_ROPE, n=x.n)
    width = {r.dataset: r.width for r in ropes}
    sign = {d: 1.0 if x.higher[d] else -1.0 for d in x.datasets}
    rows = []
    for variant in x.variants:
        if variant == BASELINE:
            continue
        diffs = [sign[d] * (x.scores.loc[d, variant] - x.scores.loc[d, BASELINE]) / width[d] for d in x.datasets]
        rows.append(compare(variant, diffs, 1.0))
    return BayesComparisons(Unit.DATASETS, ropes, tuple(rows), n=x.n)


def within_dataset(a: DatasetAnalysis) -> BayesComparisons:
    """Each configuration against concat at the same training dropout, over the dataset's seeds (folds
    under k-fold), in the leaderboard's order."""
    folds = uses_folds(a.runs)
    unit = Unit.FOLDS if folds else Unit.SEEDS
    rope = rope_of(a)
    ranked = a.ranked
    if ranked.empty or not (ranked["variant"] == BASELINE).any():
        return BayesComparisons(unit, (rope,), why_none=NoComparison.NO_BASELINE)
    if rope.basis is None:
        return BayesComparisons(unit, (rope,), why_none=NoComparison.NO_ROPE)
    column = metric_spec(a.ranking)[0]
    keys = replicate_keys(a.runs)
    values = a.runs.groupby(["variant", "dropout", *keys])[column].mean()  # one value per replicate
    sign = 1.0 if a.higher_is_better else -1.0
    rows = []
    for _, r in ranked.iterrows():
        if r["variant"] == BASELINE:
            continue
        mine, base = _replicates(values, r["variant"], r["dropout"]), _replicates(values, BASELINE, r["dropout"])
        if base is None or mine is None:
            rows.append(BayesComparison(r["variant"], r["dropout"], why_none=NoComparison.NO_BASELINE))
            continue
        diffs = (sign * (mine - base)).dropna()  # matched replicates only
        if folds:  # seeds nested within folds: one mean difference per fold
            diffs = diffs.groupby(level=FOLD).mean()
        rows.append(compare(r["variant"], diffs.tolist(), rope.width, r["dropout"]))
    return BayesComparisons(unit, (rope,), tuple(rows), n=max((c.n for c in rows), default=0))


def _replicates(values: pd.Series, variant: str, dropout) -> pd.Series | None:
    """The configuration's values indexed by replicate (seed, or (fold, seed)); None when it has none."""
    try:
        return values.loc[(variant, dropout)]
    except KeyError:
        return None
