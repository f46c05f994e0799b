"""The report's verdicts as data: what the "Which strategy to use" section claims for each dataset
(best overall, best when a modality is missing, best within a cost budget, fusion gain, tuning gain,
trust, calibration under missingness, reliance on one modality) and across datasets, computed from a DatasetAnalysis (or a CrossDataset) into frozen
dataclasses that hold the numbers and the reasons as codes. No sentence is written here: the
words live in reporting/summary.py, so a test can check a number without parsing a caption and a
caption can change without touching a number. Marked configurations (collapsed, not converged)
are never picked."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import pandas as pd

from benchmark.reporting.analysis import BASELINE, UNIMODAL, DatasetAnalysis
from benchmark.reporting.bayesian import BayesComparisons, across_datasets, within_dataset
from benchmark.reporting.calibration_curves import calibration_curves
from benchmark.reporting.crossdataset import CrossDataset, cross_dataset
from benchmark.reporting.reliance import reliance_table
from benchmark.reporting.replicates import uses_folds
from benchmark.reporting.row_predictions import PredictionStore
from benchmark.reporting.stats import Friedman, PairedTest, smallest_wilcoxon_p
from benchmark.reporting.uncertainty import DatasetUncertainty, dataset_uncertainty
from benchmark.vocabulary import subset_modalities

ALPHA = 0.05  # significance level of every test the verdicts name
UNCHANGED = 5e-4  # a tuning gain below this rounds to 0 at 3 decimals: nothing to name
FEW_DATASETS = 6  # below this many datasets the cross-dataset tests are flagged as having little power


# ------------------------------------------------------------------ building blocks
class NoPick(Enum):
    """Why a verdict names no configuration."""

    NO_FINISHED_RUNS = "no_finished_runs"
    ALL_MARKED = "all_marked"  # every candidate carries a mark
    ALL_FAST_MARKED = "all_fast_marked"  # every configuration at or above the median throughput is marked
    NO_MISSING_METRICS = "no_missing_metrics"  # no missing-rate curve and no robustness score logged
    NO_THROUGHPUT = "no_throughput"  # no inference throughput logged


@dataclass(frozen=True)
class MarkCounts:
    """How many of a dataset's ranked configurations carry each mark (one may carry both)."""

    collapsed: int = 0
    not_converged: int = 0


@dataclass(frozen=True)
class Config:
    """One configuration (strategy variant x training dropout) with its trust marks: k of the
    seeds that were checked collapsed / stopped at the epoch cap while improving."""

    variant: str
    dropout: object  # the training-dropout label as the runs logged it
    collapsed: int = 0
    collapsed_of: int = 0
    not_converged: int = 0
    not_converged_of: int = 0

    @property
    def marked(self) -> bool:
        return bool(self.collapsed or self.not_converged)

    @classmethod
    def of(cls, row) -> "Config":
        return cls(row["variant"], row["dropout"], int(row.get("n_collapsed", 0) or 0),
                   int(row.get("n_collapsed_of", 0) or 0), int(row.get("n_not_converged", 0) or 0),
                   int(row.get("n_not_converged_of", 0) or 0))

    def same(self, other: "Config | None") -> bool:
        return other is not None and (self.variant, self.dropout) == (other.variant, other.dropout)


@dataclass(frozen=True)
class Estimate:
    """A mean over a configuration's replicates with its 95% half-width (nan with one replicate)."""

    mean: float
    ci_half: float
    n: int

    @classmethod
    def of(cls, row, key: str) -> "Estimate":
        return cls(float(row[key]), float(row[key + "_ci"]), int(row["n"]))


@dataclass(frozen=True)
class Scoring:
    """What a dataset's verdicts are measured in: the ranking metric and its direction, the lead
    metric of the leaderboard, the missing-rate curve's metric, the task, and the replicates."""

    dataset: str
    task: str
    ranking: str  # metric key that ranks ("accuracy", "mae", ...)
    higher_is_better: bool
    lead: str  # the leaderboard's first metric column
    metrics: tuple[str, ...]  # the task's metrics, in column order
    curve_metric: str
    curve_higher_is_better: bool
    folds: bool  # replicates are (fold, seed) pairs, not seeds


def _marked_counts(marked: pd.DataFrame) -> MarkCounts:
    if marked.empty:
        return MarkCounts()
    return MarkCounts(int((marked["n_collapsed"] > 0).sum()), int((marked["n_not_converged"] > 0).sum()))


def _better(values: pd.Series, higher: bool) -> pd.Series:
    return values if higher else -values


# ------------------------------------------------------------------ best overall
class Versus(Enum):
    """How the best configuration stands against the BASELINE variant."""

    IS_BASELINE = "is_baseline"
    NO_BASELINE_RUN = "no_baseline_run"  # no BASELINE run at its dropout
    UNTESTED = "untested"  # a test was attempted but not possible (PairedTest.note says why)
    TESTED = "tested"


@dataclass(frozen=True)
class BestOverall:
    """The top of the ranking: the best unmarked configuration by the ranking metric."""

    config: Config | None
    why_none: NoPick | None = None
    marks: MarkCounts = MarkCounts()  # over the ranked configurations (the reason when all are marked)
    score: Estimate | None = None  # ranking metric
    lead: Estimate | None = None  # the lead metric, when it is not the ranking one
    n_ranked: int = 0  # unmarked configurations ranked
    runner_up: Config | None = None
    runner_up_score: float = float("nan")
    versus: Versus | None = None
    test: PairedTest | None = None  # against BASELINE, on the ranking metric (Holm-adjusted over the dataset)
    marked_better: int = 0  # marked configurations that score better than the pick
    marked_best_score: float = float("nan")  # the best of those (or, with no pick, the top marked score)

    @property
    def significant(self) -> bool:
        return self.test is not None and self.test.p_holm < ALPHA


def best_overall(a: DatasetAnalysis) -> BestOverall:
    ranked, trusted, marked = a.ranked, a.trusted, a.marked
    if ranked.empty:
        return BestOverall(None, NoPick.NO_FINISHED_RUNS)
    marks = _marked_counts(marked)
    score = a.score
    if trusted.empty:
        return BestOverall(None, NoPick.ALL_MARKED, marks, marked_best_score=float(marked.iloc[0][score]))
    best = trusted.iloc[0]
    lead = a.metrics[0]
    test = a.tests.get((best["variant"], best["dropout"]))
    if best["variant"] == BASELINE:
        versus = Versus.IS_BASELINE
    elif test is None:
        versus = Versus.NO_BASELINE_RUN
    else:
        versus = Versus.UNTESTED if test.note else Versus.TESTED
    better = marked[_better(marked[score], a.higher_is_better) > _better(pd.Series([best[score]]),
                                                                       a.higher_is_better).iloc[0]]
    extreme = (better[score].max() if a.higher_is_better else better[score].min()) if len(better) else float("nan")
    second = trusted.iloc[1] if len(trusted) > 1 else None
    return BestOverall(
        Config.of(best), None, marks, Estimate.of(best, score), Estimate.of(best, lead) if score != lead else None,
        len(trusted), Config.of(second) if second is not None else None,
        float(second[score]) if second is not None else float("nan"),
        versus, test if versus is not Versus.IS_BASELINE else None, len(better), float(extreme))


# ------------------------------------------------------------------ best when a modality is missing
class Criterion(Enum):
    AT_HIGHEST_RATE = "at_highest_rate"  # the curve metric at the highest test-time missing rate
    ROBUSTNESS = "robustness"  # the robustness score (no missing-rate curve logged)


@dataclass(frozen=True)
class WhenMissing:
    """The best unmarked configuration at the highest missing rate measured (the robustness score
    when no curve was logged), with the best overall's value at that rate for comparison."""

    config: Config | None
    why_none: NoPick | None = None
    marks: MarkCounts = MarkCounts()
    criterion: Criterion | None = None
    rate: int | None = None  # percent, for AT_HIGHEST_RATE
    value: float = float("nan")  # the pick's curve metric at that rate
    is_best_overall: bool = False
    best_overall_value: float = float("nan")  # the best overall's value at that rate (a pick implies one)
    robustness: float = float("nan")
    singles: tuple[tuple[str, float], ...] = ()  # (single-modality subset, the pick's score with only it)


def best_when_missing(a: DatasetAnalysis) -> WhenMissing:
    trusted = a.trusted
    if trusted.empty and len(a.ranked):
        return WhenMissing(None, NoPick.ALL_MARKED, _marked_counts(a.marked))
    overall = trusted.iloc[0] if len(trusted) else None
    singles = [s for s in a.subsets if len(subset_modalities(s)) == 1]

    def picked(row, criterion: Criterion, rate: int | None) -> WhenMissing:
        same = overall is not None and Config.of(row).same(Config.of(overall))
        column = f"missing:{rate}" if rate is not None else None
        return WhenMissing(Config.of(row), None, MarkCounts(), criterion, rate,
                           float(row[column]) if column else float("nan"), same,
                           float(overall[column]) if column and overall is not None else float("nan"),
                           float(row["robustness"]), tuple((s, float(row[f"subset:{s}"])) for s in singles))

    if a.missing_rates:
        rate = a.missing_rates[-1]
        column = f"missing:{rate}"
        usable = trusted[trusted[column].notna()]
        if len(usable):
            best = usable[column].idxmax() if a.curve_higher_is_better else usable[column].idxmin()
            return picked(usable.loc[best], Criterion.AT_HIGHEST_RATE, rate)
    usable = trusted[trusted["robustness"].notna()] if "robustness" in trusted else trusted.iloc[0:0]
    if len(usable):
        return picked(usable.loc[usable["robustness"].idxmax()], Criterion.ROBUSTNESS, None)
    return WhenMissing(None, NoPick.NO_MISSING_METRICS)


# ------------------------------------------------------------------ best within a cost budget
@dataclass(frozen=True)
class WithinBudget:
    """The best unmarked configuration by the ranking metric among those at or above the median
    inference throughput (the median over every finished configuration)."""

    config: Config | None
    why_none: NoPick | None = None
    marks: MarkCounts = MarkCounts()
    median_throughput: float = float("nan")  # samples/s
    score: float = float("nan")
    throughput: float = float("nan")
    is_best_overall: bool = False
    best_overall_score: float = float("nan")  # a pick implies a best overall
    best_overall_throughput: float = float("nan")


def best_within_budget(a: DatasetAnalysis) -> WithinBudget:
    ranked = a.ranked
    usable = ranked[ranked["infer_sps"].notna()]
    if usable.empty:
        return WithinBudget(None, NoPick.NO_THROUGHPUT)
    median = float(usable["infer_sps"].median())
    fast = usable[(usable["infer_sps"] >= median) & ~usable["marked"] & usable[a.score].notna()]
    if fast.empty:
        return WithinBudget(None, NoPick.ALL_FAST_MARKED, _marked_counts(a.marked), median)
    row = fast.loc[a.better(fast[a.score]).idxmax()]
    overall = a.trusted.iloc[0] if len(a.trusted) else None
    return WithinBudget(
        Config.of(row), None, MarkCounts(), median, float(row[a.score]), float(row["infer_sps"]),
        overall is not None and Config.of(row).same(Config.of(overall)),
        float(overall[a.score]) if overall is not None else float("nan"),
        float(overall["infer_sps"]) if overall is not None else float("nan"))


# ------------------------------------------------------------------ fusion gain
class GainStatus(Enum):
    NAMED = "named"  # a largest gain is named
    ALL_MARKED = "all_marked"  # every fused configuration with a unimodal baseline is marked
    NO_BASELINE = "no_baseline"  # no finished unimodal baseline


@dataclass(frozen=True)
class GainAnyDropout:
    """Fusion gain against one baseline for every row: the unimodal configuration with the best
    validation score over every training dropout."""

    baseline: str  # its label, with marks and dropout, as analysis wrote it
    beats: int
    of: int
    top: Config
    top_gain: float


@dataclass(frozen=True)
class FusionGain:
    """How many unmarked fused configurations beat the best unimodal baseline trained with the same
    dropout (positive gain = better, whatever the metric's direction), and the largest gain."""

    status: GainStatus
    beats: int = 0
    of: int = 0  # unmarked fused configurations with a baseline
    some_marked: bool = False  # marked fused configurations were left out of `of`
    top: Config | None = None
    top_gain: float = float("nan")
    baseline: str = ""  # the top's unimodal baseline (variant)
    baseline_score: float = float("nan")
    any_dropout: GainAnyDropout | None = None
    stronger_marked: tuple[tuple[Config, float], ...] = ()  # marked unimodal configurations beating the baseline


def _stronger_marked(a: DatasetAnalysis, top) -> tuple[float, tuple[tuple[Config, float], ...]]:
    """The baseline's score, and the marked unimodal configurations (never a baseline) that beat the
    baseline the top's fusion gain is measured against, at its dropout: against them the gain would
    be smaller."""
    ranked, score = a.ranked, a.score
    base = ranked[(ranked["variant"] == top["best_unimodal"]) & (ranked["dropout"] == top["dropout"])]
    if base.empty:
        return float("nan"), ()
    base_score = float(base[score].iloc[0])
    others = ranked[(ranked["family"] == UNIMODAL) & ranked["marked"] & (ranked["dropout"] == top["dropout"])
                    & ranked[score].notna()]
    stronger = others[a.better(others[score]) > a.better(pd.Series([base_score])).iloc[0]]
    return base_score, tuple((Config.of(r), float(r[score])) for _, r in stronger.iterrows())


def fusion_gain(a: DatasetAnalysis) -> FusionGain:
    ranked = a.ranked
    fused = ranked[(ranked["family"] != UNIMODAL) & ranked["fusion_gain"].notna()]
    fused_ok = fused[~fused["marked"]]
    if fused_ok.empty:
        return FusionGain(GainStatus.ALL_MARKED if len(fused) else GainStatus.NO_BASELINE)
    top = fused_ok.loc[fused_ok["fusion_gain"].idxmax()]
    any_dropout = None
    any_ok = fused_ok[fused_ok["fusion_gain_any"].notna()] if "fusion_gain_any" in fused_ok else fused_ok.iloc[0:0]
    if len(any_ok):
        top_any = any_ok.loc[any_ok["fusion_gain_any"].idxmax()]
        any_dropout = GainAnyDropout(str(top_any["best_unimodal_any"]), int((any_ok["fusion_gain_any"] > 0).sum()),
                                     len(any_ok), Config.of(top_any), float(top_any["fusion_gain_any"]))
    base_score, stronger = _stronger_marked(a, top)
    return FusionGain(GainStatus.NAMED, int((fused_ok["fusion_gain"] > 0).sum()), len(fused_ok),
                      len(fused_ok) < len(fused), Config.of(top), float(top["fusion_gain"]), str(top["best_unimodal"]),
                      base_score, any_dropout, stronger)


# ------------------------------------------------------------------ tuning gain
class TuningStatus(Enum):
    UNCHANGED = "unchanged"  # every configuration's gain rounds to 0
    NAMED = "named"  # the largest gain of an unmarked configuration is named
    NONE_GAINED = "none_gained"  # no unmarked configuration gained
    ALL_MARKED = "all_marked"  # every configuration with a gain is marked


@dataclass(frozen=True)
class TuningGain:
    """The gain of the Optuna-tuned hyperparameters over the strategy's defaults (positive = better)."""

    status: TuningStatus
    n: int  # configurations with a gain (marked ones included)
    mean_gain: float = float("nan")
    top: Config | None = None
    top_gain: float = float("nan")


def tuning_gain(a: DatasetAnalysis) -> TuningGain | None:
    """None when no configuration logged a tuning gain."""
    gains = a.ranked["tuning_gain"].dropna()
    if gains.empty:
        return None
    if bool((gains.abs() < UNCHANGED).all()):
        return TuningGain(TuningStatus.UNCHANGED, len(gains))
    tunable = a.trusted[a.trusted["tuning_gain"].notna()]
    mean = float(gains.mean())
    if tunable.empty:
        return TuningGain(TuningStatus.ALL_MARKED, len(gains), mean)
    if tunable["tuning_gain"].max() < UNCHANGED:
        return TuningGain(TuningStatus.NONE_GAINED, len(gains), mean)
    top = tunable.loc[tunable["tuning_gain"].idxmax()]
    return TuningGain(TuningStatus.NAMED, len(gains), mean, Config.of(top), float(top["tuning_gain"]))


# ------------------------------------------------------------------ trust
class Reference(Enum):
    CONSTANT = "constant"  # the task's constant predictor (majority class for multiclass)
    CHANCE = "chance"


@dataclass(frozen=True)
class Trust:
    """How many configurations carry a mark (and are left out of every pick), and the reference
    predictors' scores to read the numbers against."""

    marked: int
    ranked: int
    marks: MarkCounts
    references: tuple[tuple[Reference, str, float], ...]  # (which, metric, value), in the task's metric order


def trust(a: DatasetAnalysis) -> Trust | None:
    """None for runs logged without the checks and without reference predictors."""
    if not (a.judged or a.majority):
        return None
    refs = [(Reference.CONSTANT, m, float(a.majority[m])) for m in a.metrics if m in a.majority]
    refs += [(Reference.CHANCE, m, float(a.chance[m])) for m in a.metrics if m in a.chance]
    return Trust(len(a.marked), len(a.ranked), _marked_counts(a.marked), tuple(refs))


# ------------------------------------------------------------------ one dataset
# ------------------------------------------------------------------ calibration under missingness
CALIBRATION_DRIFT_FACTOR = 2.0  # ECE at the middle missing rate above this many times the full-input ECE: called out


@dataclass(frozen=True)
class CalibrationDrift:
    """The configurations whose calibration error (ECE, mean over seeds) at ``rate`` % missing is more
    than CALIBRATION_DRIFT_FACTOR times their full-input ECE: their confidence stops meaning what it
    says as modalities go missing. Every ranked configuration with both values is checked (marked ones
    too: a warning, not a pick); ``drifting`` is (config, full-input ECE, ECE at the rate), largest
    ratio first."""

    rate: int  # percent
    checked: int
    drifting: tuple[tuple[Config, float, float], ...] = ()
    factor: float = CALIBRATION_DRIFT_FACTOR


def calibration_drift(a: DatasetAnalysis) -> CalibrationDrift | None:
    """None when no run of the dataset logged calibration (older stores, regression)."""
    curves = calibration_curves(a)
    if curves is None:
        return None
    rate = curves.middle_rate
    both = curves.configs[curves.configs["ece:full"].notna() & curves.configs[f"ece:{rate}"].notna()]
    drifting = [(Config.of(r), float(r["ece:full"]), float(r[f"ece:{rate}"])) for _, r in both.iterrows()
                if r[f"ece:{rate}"] > CALIBRATION_DRIFT_FACTOR * r["ece:full"]]
    drifting.sort(key=lambda item: -(item[2] / item[1] if item[1] > 0 else float("inf")))
    return CalibrationDrift(rate, len(both), tuple(drifting))


# ------------------------------------------------------------------ reliance on one modality
DOMINANT_SHARE = 0.9  # one modality's reliance share (mean over seeds) at or above this: relies almost only on it


@dataclass(frozen=True)
class OneModality:
    """The fused configurations that rely almost entirely on one modality: one modality's share of the
    permutation reliance (reporting/reliance.py; mean over seeds) is at least DOMINANT_SHARE. Every
    fused configuration with shares is checked, except those with a collapsed seed (a constant predictor
    relies on nothing, and its shares are noise); ``dominated`` is (config, modality, its share, equity
    index), largest share first."""

    checked: int
    dominated: tuple[tuple[Config, str, float, float], ...] = ()
    threshold: float = DOMINANT_SHARE


def one_modality(a: DatasetAnalysis) -> OneModality | None:
    """None when no run of the dataset logged reliance (older stores) or it has fewer than two modalities."""
    table = reliance_table(a)
    if table is None or len(table.modalities) < 2:
        return None
    shares = [f"share:{m}" for m in table.modalities]
    configs = table.configs
    fused = configs[(configs["family"] != UNIMODAL) & (configs["n_collapsed"] == 0) & configs[shares].notna().any(axis=1)]
    dominated = []
    for _, r in fused.iterrows():
        top = max(table.modalities, key=lambda m: r[f"share:{m}"] if r[f"share:{m}"] == r[f"share:{m}"] else -1.0)
        if r[f"share:{top}"] >= DOMINANT_SHARE:
            dominated.append((Config.of(r), top, float(r[f"share:{top}"]), float(r["equity"])))
    dominated.sort(key=lambda item: -item[2])
    return OneModality(len(fused), tuple(dominated))


@dataclass(frozen=True)
class DatasetVerdicts:
    """Every claim the summary makes about one dataset. With no finished run only `best` is set
    (NoPick.NO_FINISHED_RUNS)."""

    scoring: Scoring
    best: BestOverall
    when_missing: WhenMissing | None = None
    within_budget: WithinBudget | None = None
    fusion: FusionGain | None = None
    tuning: TuningGain | None = None
    trust: Trust | None = None
    bayes: BayesComparisons | None = None  # each configuration against BASELINE over seeds (reporting/bayesian.py)
    calibration: CalibrationDrift | None = None  # None: no run logged calibration
    # each pick's interval and lead, the comparisons with BASELINE over test rows and seeds (reporting/uncertainty.py)
    uncertainty: DatasetUncertainty | None = None
    reliance: OneModality | None = None  # None: no run logged modality reliance


def scoring(a: DatasetAnalysis) -> Scoring:
    return Scoring(a.name, a.task, a.ranking, a.higher_is_better, a.metrics[0], tuple(a.metrics), a.curve_metric,
                   a.curve_higher_is_better, uses_folds(a.runs))


def dataset_verdicts(a: DatasetAnalysis, store: PredictionStore | None = None) -> DatasetVerdicts:
    """``store``: the runs' per-row test predictions (None: intervals and tests over seeds only)."""
    best = best_overall(a)
    if best.why_none is NoPick.NO_FINISHED_RUNS:
        return DatasetVerdicts(scoring(a), best)
    missing, budget = best_when_missing(a), best_within_budget(a)
    return DatasetVerdicts(scoring(a), best, missing, budget, fusion_gain(a),
                           tuning_gain(a), trust(a), within_dataset(a), calibration_drift(a),
                           dataset_uncertainty(a, store, best, missing, budget), one_modality(a))


# ------------------------------------------------------------------ across datasets
class CrossStatus(Enum):
    TOO_FEW_DATASETS = "too_few_datasets"  # ranks over datasets need at least two
    TOO_FEW_STRATEGIES = "too_few_strategies"  # fewer than two fused strategies finished on every dataset
    RANKED = "ranked"


@dataclass(frozen=True)
class PairVerdict:
    a: str
    b: str
    p: float
    p_holm: float


@dataclass(frozen=True)
class CrossDatasetVerdict:
    """Which fused strategy ranks best over the datasets, and what the tests over datasets allow."""

    status: CrossStatus
    n_datasets: int
    n_strategies: int
    leaders: tuple[str, ...] = ()  # the best average rank (ties share it)
    best_rank: float = float("nan")
    friedman: Friedman | None = None  # None: not run (its note, when set, says why it was not possible)
    ranks_differ: bool = False  # Friedman rejected at ALPHA
    cd: float = float("nan")  # Nemenyi critical difference, in ranks
    within_cd: int = 0  # strategies whose average rank is within CD of the best
    pairs_tested: int = 0  # pairwise Wilcoxon tests with an adjusted p
    pairs_significant: int = 0
    lowest_pair: PairVerdict | None = None  # the smallest Holm-adjusted p
    low_power: bool = False  # fewer than FEW_DATASETS datasets
    smallest_possible_p: float = float("nan")  # the smallest two-sided Wilcoxon p N datasets can give
    marked: tuple[tuple[str, tuple[str, ...]], ...] = ()  # variant -> where it is marked (crossdataset's labels)


def cross_dataset_verdict(x: CrossDataset) -> CrossDatasetVerdict:
    if x.n < 2:
        return CrossDatasetVerdict(CrossStatus.TOO_FEW_DATASETS, x.n, len(x.variants))
    if len(x.variants) < 2:
        return CrossDatasetVerdict(CrossStatus.TOO_FEW_STRATEGIES, x.n, len(x.variants))
    ranks = x.mean_ranks
    best = ranks.index[0]
    f = x.friedman
    tested = f is not None and not f.note
    rejected = bool(tested and f.p < ALPHA)
    valid = [p for p in x.pairs if p.p_holm == p.p_holm]
    low = min(valid, key=lambda p: p.p_holm) if valid else None
    return CrossDatasetVerdict(
        CrossStatus.RANKED, x.n, len(x.variants), tuple(v for v in ranks.index if ranks[v] == ranks[best]),
        float(ranks[best]), f, rejected, x.cd,
        sum(1 for v in x.variants if ranks[v] - ranks[best] < x.cd) if tested else 0,
        len(valid), sum(1 for p in valid if p.p_holm < ALPHA),
        PairVerdict(low.a, low.b, low.p, low.p_holm) if low else None, x.n < FEW_DATASETS,
        smallest_wilcoxon_p(x.n), tuple((v, tuple(where)) for v, where in x.marked.items()))


# ------------------------------------------------------------------ the whole report
@dataclass(frozen=True)
class ReportVerdicts:
    """Every verdict of a report: per dataset (in the order of `analyses`), and across them (None
    when the matrix has no dataset)."""

    datasets: tuple[DatasetVerdicts, ...]
    cross: CrossDataset | None = None  # the scores and ranks the cross-dataset verdict rests on
    across: CrossDatasetVerdict | None = None
    bayes: BayesComparisons | None = None  # each strategy against BASELINE over the datasets (reporting/bayesian.py)


def report_verdicts(analyses: list[DatasetAnalysis], store: PredictionStore | None = None) -> ReportVerdicts:
    if not analyses:
        return ReportVerdicts(())
    x = cross_dataset(analyses)
    return ReportVerdicts(tuple(dataset_verdicts(a, store) for a in analyses), x, cross_dataset_verdict(x),
                          across_datasets(x, analyses))
