"""Per-dataset numbers behind the report: one row per configuration (strategy x training
dropout) with means and confidence intervals over seeds, trust marks (collapsed, not
converged), the training record, fusion gain, the paired test against concatenation, and the
recommendations derived from them. Marked configurations are never ranked or recommended."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import pandas as pd

from benchmark.reporting.stats import PairedTest, mean_ci95, paired_ttest
from benchmark.scale.schema import (BEST_EPOCH, CHANCE_ACCURACY, COLLAPSED, EPOCHS_RUN, LARGEST_CLASS_SHARE,
                                    MAJORITY_ACCURACY, MAJORITY_MACRO_F1, MISSING_PREFIX, NOT_CONVERGED,
                                    RANKING_METRIC, RANKING_METRICS, STOP_REASON, SUBSET_PREFIX, missing_metric,
                                    subset_modalities)

BASELINE = "concat"  # the paired test compares every strategy with this variant
UNIMODAL = "unimodal"
DEFAULT_RANKING = "accuracy"
# A ranking metric's configuration column (mean over seeds; "<column>_ci" is its 95% half-width)
# and its name in words. The keys are those of RANKING_METRICS.
SCORE_COLUMNS = {"accuracy": "accuracy", "macro_f1": "macro_f1"}
SCORE_LABELS = {"accuracy": "test accuracy", "macro_f1": "test macro-F1"}

class MemoryMetric(NamedTuple):
    """How the report names one memory metric: in a sentence or on an axis, as a leaderboard
    column and in a plot title; the caveat its figure caption carries; the device it measures."""

    label: str
    column: str
    title: str
    caveat: str
    device: str  # "gpu", "cpu", or "any" (counted, the same on every device)


# In order of preference on ties: the measured GPU peak; then the tensor accounting of one
# training step (same on every device, separates strategies); the CPU readings only for older runs.
MEMORY_METRICS = {
    "peak_gpu_mem_mb": MemoryMetric("peak GPU memory allocated (MiB)", "peak GPU mem (MiB)", "peak GPU memory", "",
                                    "gpu"),
    "train_step_tensor_mb": MemoryMetric(
        "tensor memory of one training step (MiB)", "train-step tensors (MiB)", "training-step tensor memory",
        " Counted, not sampled: weights, gradients and AdamW's two moment buffers plus the activations autograd "
        "saves for one full training batch with all modalities present. It is the same on CPU and GPU and excludes "
        "allocator caching, the CUDA context and the cached features.", "any"),
    "cpu_rss_growth_mb": MemoryMetric(
        "CPU resident memory added during the cell (MiB)", "CPU memory added (MiB)", "CPU memory added",
        " Measured on CPU: the growth of the process's resident memory while the cell trained and was evaluated "
        "(sampled every 5 ms), not GPU memory; the allocator may reuse memory freed by earlier cells, so small "
        "differences are noise.", "cpu"),
    "peak_cpu_rss_mb": MemoryMetric(
        "peak CPU RSS of the benchmark process (MiB)", "peak CPU RSS (MiB)", "peak CPU RSS",
        " Measured on CPU: this is the peak resident memory of the whole benchmark process (framework, data and "
        "every earlier cell included), not GPU memory and not the strategy's own footprint; treat differences "
        "between strategies as an upper bound only.", "cpu"),
}
MEMORY_KEYS = tuple(MEMORY_METRICS)


@dataclass
class DatasetAnalysis:
    name: str
    configs: pd.DataFrame  # one row per (variant, dropout); failed-only configurations have n == 0
    runs: pd.DataFrame  # the dataset's finished runs
    problems: pd.DataFrame  # the dataset's failed / unfinished runs
    subsets: list[str] = field(default_factory=list)  # metric suffixes, largest subset first
    missing_rates: list[int] = field(default_factory=list)  # percent
    memory_key: str | None = None
    tests: dict[tuple[str, float], PairedTest] = field(default_factory=dict)  # vs BASELINE, on the score
    ranking: str = DEFAULT_RANKING  # key of RANKING_METRICS that ranks this dataset
    ranking_declared: bool = False  # the runs named their ranking metric (param `ranking_metric`)
    ranking_note: str = ""  # why the ranking is not the declared one, or that runs disagreed
    majority_accuracy: float = float("nan")  # the majority-class predictor on the test split
    majority_macro_f1: float = float("nan")
    chance_accuracy: float = float("nan")  # 1 / number of classes
    judged: bool = False  # the runs carry the collapsed / not_converged marks
    trained: bool = False  # the runs carry epochs_run / best_epoch / stop_reason

    @property
    def score(self) -> str:
        """The configs column that ranks: "accuracy" or "macro_f1"."""
        return SCORE_COLUMNS[self.ranking]

    @property
    def score_label(self) -> str:
        return SCORE_LABELS[self.ranking]

    @property
    def reference_score(self) -> float:
        """The majority-class predictor's value of the ranking metric (nan when not logged)."""
        return self.majority_macro_f1 if self.ranking == "macro_f1" else self.majority_accuracy

    @property
    def ranked(self) -> pd.DataFrame:
        """Configurations with at least one finished run: the ranked (unmarked) ones best first,
        then the marked ones (unranked), each by the ranking score."""
        if self.configs.empty:
            return self.configs
        done = self.configs[self.configs["n"] > 0]
        return done.sort_values(["marked", self.score, "variant", "dropout"], ascending=[True, False, True, True],
                                na_position="last")

    @property
    def trusted(self) -> pd.DataFrame:
        """The ranked configurations that carry no mark, best first: the only candidates for a recommendation."""
        ranked = self.ranked
        return ranked[~ranked["marked"]] if len(ranked) else ranked

    @property
    def marked(self) -> pd.DataFrame:
        ranked = self.ranked
        return ranked[ranked["marked"]] if len(ranked) else ranked


def mark_text(row) -> str:
    """"collapsed 2/3; not converged 1/3" (k of the n seeds that were checked), or "" for no mark."""
    parts = []
    for key, words in (("n_collapsed", "collapsed"), ("n_not_converged", "not converged")):
        if row.get(key, 0):
            parts.append(f"{words} {int(row[key])}/{int(row[key + '_of'])}")
    return "; ".join(parts)


def config_label(row) -> str:
    """The variant as every table shows it: with its marks in brackets, "fancy [collapsed 2/3]"."""
    mark = mark_text(row)
    return row["variant"] + (f" [{mark}]" if mark else "")


def _mean(series: pd.Series) -> float:
    values = series.dropna()
    return float(values.mean()) if len(values) else float("nan")


def _flag(group: pd.DataFrame, column: str) -> tuple[int, int]:
    """(seeds with the 0/1 flag set, seeds checked)."""
    if column not in group:
        return 0, 0
    values = group[column].dropna()
    return int((values > 0.5).sum()), len(values)


def _stop_reasons(group: pd.DataFrame) -> str:
    """"plateau 2, cap 1" (most frequent first), or "" when no run logged why it stopped."""
    if STOP_REASON not in group:
        return ""
    counts = group[STOP_REASON].dropna().astype(str).value_counts()
    return ", ".join(f"{reason} {k}" for reason, k in sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _constant(runs: pd.DataFrame, column: str) -> float:
    """A value logged identically with every run of a dataset (reference predictors)."""
    values = runs[column].dropna() if column in runs else ()
    return float(values.median()) if len(values) else float("nan")


def _ranking(runs: pd.DataFrame) -> tuple[str, bool, str]:
    """(ranking key, whether the runs declared one, a note when the declared one cannot be used)."""
    values = runs[RANKING_METRIC].dropna().astype(str) if RANKING_METRIC in runs else pd.Series(dtype=str)
    if values.empty:
        return DEFAULT_RANKING, False, ""
    counts = values.value_counts()
    declared = str(counts.index[0])
    note = ""
    if len(counts) > 1:
        note = (f"The runs disagree on the ranking metric ({', '.join(f'`{v}` {k}' for v, k in counts.items())}); "
                f"the most common, `{declared}`, is used. ")
    if declared not in RANKING_METRICS:
        return DEFAULT_RANKING, True, note + f"Unknown ranking metric `{declared}`: ranked by accuracy instead."
    column = RANKING_METRICS[declared]
    if column not in runs or runs[column].notna().sum() == 0:
        return DEFAULT_RANKING, True, note + f"The dataset is ranked by `{declared}`, but no run logged `{column}`: " \
                                             "ranked by accuracy instead."
    return declared, True, note.strip()


def analyse(name: str, runs: pd.DataFrame, problems: pd.DataFrame) -> DatasetAnalysis:
    subsets = sorted({c[len(SUBSET_PREFIX):] for c in runs.columns if c.startswith(SUBSET_PREFIX)
                      and runs[c].notna().any()}, key=lambda s: (-len(subset_modalities(s)), s))
    rates = sorted(int(c[len(MISSING_PREFIX):]) for c in runs.columns if c.startswith(MISSING_PREFIX)
                   and runs[c].notna().any())
    counts = {k: int(runs[k].notna().sum()) if k in runs else 0 for k in MEMORY_KEYS}
    memory_key = max(counts, key=counts.get) if any(counts.values()) else None

    rows = []
    good_groups = dict(list(runs.groupby(["variant", "dropout"]))) if len(runs) else {}
    bad_groups = dict(list(problems.groupby(["variant", "dropout"]))) if len(problems) else {}
    for variant, dropout in sorted(set(good_groups) | set(bad_groups)):
        group = good_groups.get((variant, dropout), runs.iloc[0:0])
        bad = bad_groups.get((variant, dropout), problems.iloc[0:0])
        source = group if len(group) else bad
        nan2 = (float("nan"), float("nan"))
        acc, acc_ci = mean_ci95(group["test_accuracy"]) if len(group) else nan2
        f1, f1_ci = mean_ci95(group["test_macro_f1"]) if len(group) and "test_macro_f1" in group else nan2
        gain, gain_ci = mean_ci95(group["tuning_gain"]) if "tuning_gain" in group else nan2
        n_collapsed, n_collapsed_of = _flag(group, COLLAPSED)
        n_not_converged, n_not_converged_of = _flag(group, NOT_CONVERGED)
        row = {
            "variant": variant, "dropout": dropout, "strategy": source["strategy"].iloc[0],
            "family": source["family"].iloc[0], "n": len(group), "seeds": sorted(group["seed"].tolist()),
            "n_failed": int((bad["status"] == "failed").sum()), "n_unfinished": int((bad["status"] != "failed").sum()),
            "accuracy": acc, "accuracy_ci": acc_ci, "macro_f1": f1, "macro_f1_ci": f1_ci,
            "tuning_gain": gain, "tuning_gain_ci": gain_ci,
            "n_collapsed": n_collapsed, "n_collapsed_of": n_collapsed_of,
            "n_not_converged": n_not_converged, "n_not_converged_of": n_not_converged_of,
            "marked": bool(n_collapsed or n_not_converged), "stop_reasons": _stop_reasons(group),
        }
        for key, column in (("robustness", "robustness"), ("default_accuracy", "default_test_accuracy"),
                            ("infer_sps", "inference_samples_per_s"), ("train_sps", "train_samples_per_s"),
                            ("params", "param_count"), ("epochs_run", EPOCHS_RUN), ("best_epoch", BEST_EPOCH),
                            ("largest_class_share", LARGEST_CLASS_SHARE)):
            row[key] = _mean(group[column]) if column in group else float("nan")
        row["robustness_n"] = int(group["robustness"].notna().sum()) if "robustness" in group else 0
        if n_collapsed:  # a (partly) constant predictor has no robustness to speak of
            row["robustness"], row["robustness_n"] = float("nan"), 0
        row["memory"] = _mean(group[memory_key]) if memory_key and memory_key in group else float("nan")
        for s in subsets:
            row[f"subset:{s}"] = _mean(group[SUBSET_PREFIX + s])
        for r in rates:
            row[f"missing:{r}"] = _mean(group[missing_metric(r / 100)])
        rows.append(row)
    configs = pd.DataFrame(rows)
    ranking, declared, note = _ranking(runs)
    analysis = DatasetAnalysis(
        name, configs, runs, problems, subsets, rates, memory_key, ranking=ranking, ranking_declared=declared,
        ranking_note=note, majority_accuracy=_constant(runs, MAJORITY_ACCURACY),
        majority_macro_f1=_constant(runs, MAJORITY_MACRO_F1), chance_accuracy=_constant(runs, CHANCE_ACCURACY),
        judged=any(c in runs and runs[c].notna().any() for c in (COLLAPSED, NOT_CONVERGED)),
        trained=any(c in runs and runs[c].notna().any() for c in (EPOCHS_RUN, BEST_EPOCH, STOP_REASON)))
    if configs.empty:
        return analysis
    score = configs[analysis.score]
    configs["rank"] = score.where(~configs["marked"] & (configs["n"] > 0)).rank(method="min", ascending=False)
    _fusion_gain(configs, analysis.score)
    analysis.tests = _baseline_tests(configs, runs, RANKING_METRICS[ranking])
    return analysis


def _fusion_gain(configs: pd.DataFrame, score: str) -> None:
    """Mean score minus the best unimodal baseline's mean score at the same training dropout. The
    baseline is the best unmarked unimodal configuration (a marked one only when all are marked)."""
    configs["best_unimodal"], configs["best_unimodal_label"], configs["fusion_gain"] = None, None, float("nan")
    for dropout, group in configs.groupby("dropout"):
        uni = group[(group["family"] == UNIMODAL) & (group["n"] > 0) & group[score].notna()]
        if uni.empty:
            continue
        if (~uni["marked"]).any():
            uni = uni[~uni["marked"]]
        best = uni.loc[uni[score].idxmax()]
        index = group.index
        configs.loc[index, "best_unimodal"] = best["variant"]
        configs.loc[index, "best_unimodal_label"] = config_label(best)
        configs.loc[index, "fusion_gain"] = group[score] - best[score]


def _baseline_tests(configs: pd.DataFrame, runs: pd.DataFrame, metric: str = "test_accuracy"
                    ) -> dict[tuple[str, float], PairedTest]:
    """Paired t-test of each configuration's `metric` against BASELINE at the same training dropout, paired by seed."""
    tests = {}
    # one value per (variant, dropout, seed), even if a cell was logged twice
    by_seed = runs.groupby(["variant", "dropout", "seed"])[metric].mean()
    for _, row in configs[(configs["n"] > 0) & (configs["variant"] != BASELINE)].iterrows():
        key = (BASELINE, row["dropout"])
        if key not in by_seed.index.droplevel("seed"):
            continue
        mine, base = by_seed.loc[(row["variant"], row["dropout"])], by_seed.loc[key]
        seeds = sorted(set(mine.index) & set(base.index))
        tests[(row["variant"], row["dropout"])] = paired_ttest(mine.loc[seeds].tolist(), base.loc[seeds].tolist())
    return tests


# ------------------------------------------------------------------ recommendations
@dataclass
class Pick:
    row: pd.Series | None
    reason: str = ""  # why there is no pick, when there is none


def marked_counts(a: DatasetAnalysis) -> str:
    """"2 collapsed, 1 not converged" over the dataset's configurations (one may be both)."""
    marked = a.marked
    parts = [f"{int((marked[key] > 0).sum())} {words}" for key, words in
             (("n_collapsed", "collapsed"), ("n_not_converged", "not converged")) if (marked[key] > 0).any()]
    return ", ".join(parts)


def _all_marked(a: DatasetAnalysis, what: str = "finished configuration") -> str:
    return f"every {what} is marked ({marked_counts(a)})"


def best_overall(a: DatasetAnalysis) -> Pick:
    """The top of the ranking: the best unmarked configuration by the dataset's ranking metric."""
    if a.ranked.empty:
        return Pick(None, "no finished runs")
    trusted = a.trusted
    return Pick(trusted.iloc[0]) if len(trusted) else Pick(None, _all_marked(a))


def best_when_missing(a: DatasetAnalysis) -> tuple[Pick, str]:
    """Highest mean accuracy at the highest test-time missing rate measured (robustness score when
    no missing-rate curve was logged), among unmarked configurations. Returns the pick and the
    criterion in words."""
    ranked = a.trusted
    if ranked.empty and len(a.ranked):
        return Pick(None, _all_marked(a)), ""
    if a.missing_rates:
        column = f"missing:{a.missing_rates[-1]}"
        usable = ranked[ranked[column].notna()]
        if len(usable):
            return Pick(usable.loc[usable[column].idxmax()]), f"accuracy at {a.missing_rates[-1]}% missing"
    usable = ranked[ranked["robustness"].notna()] if "robustness" in ranked else ranked.iloc[0:0]
    if len(usable):
        return Pick(usable.loc[usable["robustness"].idxmax()]), "robustness score"
    return Pick(None, "no missing-modality metrics logged"), ""


def best_within_budget(a: DatasetAnalysis) -> tuple[Pick, float]:
    """Best ranking score among unmarked configurations at or above the median inference throughput
    (the median over every finished configuration)."""
    ranked = a.ranked
    usable = ranked[ranked["infer_sps"].notna()]
    if usable.empty:
        return Pick(None, "no inference throughput logged"), float("nan")
    median = float(usable["infer_sps"].median())
    fast = usable[(usable["infer_sps"] >= median) & ~usable["marked"] & usable[a.score].notna()]
    if fast.empty:
        return Pick(None, _all_marked(a, "configuration at or above the median throughput")), median
    return Pick(fast.loc[fast[a.score].idxmax()]), median
