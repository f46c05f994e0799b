"""Per-dataset numbers behind the report: one row per configuration (strategy x training
dropout) with means and confidence intervals over seeds, fusion gain, the paired test
against concatenation, and the recommendations derived from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import pandas as pd

from benchmark.reporting.stats import PairedTest, mean_ci95, paired_ttest
from benchmark.scale.schema import MISSING_PREFIX, SUBSET_PREFIX, missing_metric, subset_modalities

BASELINE = "concat"  # the paired test compares every strategy with this variant
UNIMODAL = "unimodal"
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
    tests: dict[tuple[str, float], PairedTest] = field(default_factory=dict)  # vs BASELINE

    @property
    def ranked(self) -> pd.DataFrame:
        """Configurations with at least one finished run, best first."""
        return self.configs[self.configs["n"] > 0].sort_values(["rank", "variant", "dropout"])


def _mean(series: pd.Series) -> float:
    values = series.dropna()
    return float(values.mean()) if len(values) else float("nan")


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
        acc, acc_ci = mean_ci95(group["test_accuracy"]) if len(group) else (float("nan"), float("nan"))
        gain, gain_ci = mean_ci95(group["tuning_gain"]) if "tuning_gain" in group else (float("nan"),) * 2
        row = {
            "variant": variant, "dropout": dropout, "strategy": source["strategy"].iloc[0],
            "family": source["family"].iloc[0], "n": len(group), "seeds": sorted(group["seed"].tolist()),
            "n_failed": int((bad["status"] == "failed").sum()), "n_unfinished": int((bad["status"] != "failed").sum()),
            "accuracy": acc, "accuracy_ci": acc_ci, "tuning_gain": gain, "tuning_gain_ci": gain_ci,
        }
        for key, column in (("macro_f1", "test_macro_f1"), ("robustness", "robustness"),
                            ("default_accuracy", "default_test_accuracy"), ("infer_sps", "inference_samples_per_s"),
                            ("train_sps", "train_samples_per_s"), ("params", "param_count")):
            row[key] = _mean(group[column]) if column in group else float("nan")
        row["memory"] = _mean(group[memory_key]) if memory_key and memory_key in group else float("nan")
        for s in subsets:
            row[f"subset:{s}"] = _mean(group[SUBSET_PREFIX + s])
        for r in rates:
            row[f"missing:{r}"] = _mean(group[missing_metric(r / 100)])
        rows.append(row)
    configs = pd.DataFrame(rows)
    analysis = DatasetAnalysis(name, configs, runs, problems, subsets, rates, memory_key)
    if configs.empty:
        return analysis
    configs["rank"] = configs["accuracy"].rank(method="min", ascending=False)
    _fusion_gain(configs)
    analysis.tests = _baseline_tests(configs, runs)
    return analysis


def _fusion_gain(configs: pd.DataFrame) -> None:
    """Mean accuracy minus the best unimodal baseline's mean accuracy at the same training dropout."""
    configs["best_unimodal"], configs["fusion_gain"] = None, float("nan")
    for dropout, group in configs.groupby("dropout"):
        uni = group[(group["family"] == UNIMODAL) & (group["n"] > 0)]
        if uni.empty:
            continue
        best = uni.loc[uni["accuracy"].idxmax()]
        index = group.index
        configs.loc[index, "best_unimodal"] = best["variant"]
        configs.loc[index, "fusion_gain"] = group["accuracy"] - best["accuracy"]


def _baseline_tests(configs: pd.DataFrame, runs: pd.DataFrame) -> dict[tuple[str, float], PairedTest]:
    """Paired t-test of each configuration against BASELINE at the same training dropout, paired by seed."""
    tests = {}
    # one accuracy per (variant, dropout, seed), even if a cell was logged twice
    by_seed = runs.groupby(["variant", "dropout", "seed"])["test_accuracy"].mean()
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


def best_overall(a: DatasetAnalysis) -> Pick:
    ranked = a.ranked
    return Pick(ranked.iloc[0]) if len(ranked) else Pick(None, "no finished runs")


def best_when_missing(a: DatasetAnalysis) -> tuple[Pick, str]:
    """Highest mean accuracy at the highest test-time missing rate measured (robustness score when
    no missing-rate curve was logged). Returns the pick and the criterion in words."""
    ranked = a.ranked
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
    """Best accuracy among configurations at or above the median inference throughput."""
    ranked = a.ranked
    usable = ranked[ranked["infer_sps"].notna()]
    if usable.empty:
        return Pick(None, "no inference throughput logged"), float("nan")
    median = float(usable["infer_sps"].median())
    fast = usable[usable["infer_sps"] >= median]
    return Pick(fast.loc[fast["accuracy"].idxmax()]), median
