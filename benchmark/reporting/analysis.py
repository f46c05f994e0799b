"""Per-dataset numbers behind the report: one row per configuration (strategy x training
dropout) with means and confidence intervals over seeds, trust marks (collapsed, not
converged), the training record, fusion gain, the paired test against concatenation. The
recommendations derived from them are in reporting/verdicts.py. Marked configurations are never ranked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import pandas as pd

from benchmark.reporting.replicates import replicate_keys
from benchmark.reporting.stats import PairedTest, holm_tests, mean_ci95, paired_ttest
from benchmark.vocabulary import (BEST_EPOCH, COLLAPSED, DATA_ROWS_PREFIX, DEFAULT_RANKING_METRICS, DEFAULT_TASK, EPOCHS_RUN,
                                    LARGEST_CLASS_SHARE, NOT_CONVERGED, RANKING_METRIC, RANKING_METRICS,
                                    REFERENCE_PREFIX, SIGN_ACCURACY, STOP_REASON, TASK, TASKS, missing_metric, missing_prefix,
                                    subset_modalities, subset_prefix, task_metrics)
from benchmark.vocabulary import ZERO_SHOT_ADAPTED_PREFIX, ZERO_SHOT_PREFIX

BASELINE = "concat"  # the paired test compares every strategy with this variant
UNIMODAL = "unimodal"
# The metrics each task's tables show, in column order (the first one leads the leaderboard; regression's
# acc-2 only where the runs logged it). Every metric <m> is the MLflow metric "test_<m>".
TASK_METRICS = {task: task_metrics(task, sign_accuracy=True) for task in TASKS}
DEFAULT_RANKINGS = DEFAULT_RANKING_METRICS  # the ranking metric of runs that name none, per task
DEFAULT_RANKING = DEFAULT_RANKINGS[DEFAULT_TASK]
# The reference predictor of each task, in words (the vocabulary's "reference_<metric>"; multiclass runs
# also carry "chance_accuracy").
REFERENCE_NAMES = {"multiclass": "majority class", "binary": "constant (training prevalence)",
                   "multilabel": "constant (training prevalence per label)", "regression": "constant (training mean)"}
METRIC_LABELS = {"accuracy": "accuracy", "macro_f1": "macro-F1", "auroc": "AUROC", "f1": "F1", "micro_f1": "micro-F1",
                 "mean_ap": "mAP", "mae": "MAE", "rmse": "RMSE", "pearson_r": "Pearson r",
                 "sign_accuracy": "acc-2 (sign accuracy)"}
ALL_METRICS = tuple(dict.fromkeys(m for metrics in TASK_METRICS.values() for m in metrics))
_LOWER_IS_BETTER = {"mae", "rmse"}  # used only for a metric the vocabulary does not list


def metric_spec(metric: str) -> tuple[str, bool]:
    """(MLflow metric name, higher_is_better) of a metric key, from the vocabulary's RANKING_METRICS."""
    spec = RANKING_METRICS.get(metric)
    if spec is None:
        return f"test_{metric}", metric not in _LOWER_IS_BETTER
    return spec[0], bool(spec[1])


def metric_label(metric: str) -> str:
    """"mae" -> "MAE" (a metric key in words)."""
    return METRIC_LABELS.get(metric, metric)

class MemoryMetric(NamedTuple):
    """How the report names one memory metric: in a sentence or on an axis, as a leaderboard
    column and in a plot title; the caveat its figure caption carries; the device it measures."""

    label: str
    column: str
    title: str
    caveat: str
    device: str  # "gpu", "cpu", or "any" (counted, the same on every device)


# In order of preference on ties: the measured GPU peak; then the tensor accounting of one
# training step (same on every device, separates strategies); the CPU readings last (for runs that logged
# no tensor accounting).
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
    task: str = DEFAULT_TASK  # the runs' `task` param
    metrics: tuple[str, ...] = TASK_METRICS[DEFAULT_TASK]  # the task's metrics the runs logged, in column order
    higher_is_better: bool = True  # direction of the ranking metric
    subset_metric: str = "accuracy"  # the metric of the per-subset columns ("subset:<suffix>")
    tuning_metric: str = "accuracy"  # the metric of "tuning_gain" and "default_score" (the ranking one where logged)
    curve_metric: str = "accuracy"  # the metric of the missing-rate columns ("missing:<rate>")
    majority: dict[str, float] = field(default_factory=dict)  # metric -> the majority-class (constant) predictor's
    chance: dict[str, float] = field(default_factory=dict)  # metric -> chance (e.g. accuracy 1 / classes)
    zero_shot: dict[str, float] = field(default_factory=dict)  # metric -> zero-shot CLIP ("zero_shot_<metric>")
    # metric -> zero-shot CLIP adapted to the dataset's pairs ("zero_shot_adapted_<metric>")
    zero_shot_adapted: dict[str, float] = field(default_factory=dict)
    judged: bool = False  # the runs carry the collapsed / not_converged marks
    trained: bool = False  # the runs carry epochs_run / best_epoch / stop_reason
    data_rows: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> "a-b" -> rows with those present

    @property
    def score(self) -> str:
        """The configs column that ranks: the ranking metric's key ("accuracy", "mae", ...)."""
        return self.ranking

    @property
    def score_label(self) -> str:
        return f"test {metric_label(self.ranking)}"

    @property
    def direction(self) -> str:
        """"higher is better" / "lower is better" for the ranking metric."""
        return "higher is better" if self.higher_is_better else "lower is better"

    @property
    def curve_higher_is_better(self) -> bool:
        return metric_spec(self.curve_metric)[1]

    @property
    def majority_accuracy(self) -> float:
        return self.majority.get("accuracy", float("nan"))

    @property
    def majority_macro_f1(self) -> float:
        return self.majority.get("macro_f1", float("nan"))

    @property
    def chance_accuracy(self) -> float:
        return self.chance.get("accuracy", float("nan"))

    @property
    def reference_score(self) -> float:
        """The majority-class (constant) predictor's value of the ranking metric (nan when not logged)."""
        return self.majority.get(self.ranking, float("nan"))

    @property
    def curve_reference(self) -> float:
        """The constant predictor's value of the missing-rate curve's metric (nan when not logged)."""
        return self.majority.get(self.curve_metric, float("nan"))

    def better(self, values: pd.Series) -> pd.Series:
        """The ranking metric's values turned so that higher is better (negated when lower is better)."""
        return values if self.higher_is_better else -values

    @property
    def ranked(self) -> pd.DataFrame:
        """Configurations with at least one finished run: the ranked (unmarked) ones best first,
        then the marked ones (unranked), each by the ranking score."""
        if self.configs.empty:
            return self.configs
        done = self.configs[self.configs["n"] > 0]
        return done.sort_values(["marked", self.score, "variant", "dropout"],
                                ascending=[True, not self.higher_is_better, True, True], na_position="last")

    @property
    def trusted(self) -> pd.DataFrame:
        """The ranked configurations that carry no mark, best first: the only candidates for a recommendation."""
        ranked = self.ranked
        return ranked[~ranked["marked"]] if len(ranked) else ranked

    @property
    def marked(self) -> pd.DataFrame:
        ranked = self.ranked
        return ranked[ranked["marked"]] if len(ranked) else ranked



def leading_configurations(configs: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """The rows a per-configuration table or figure shows from ``configs`` (in ranked order): the best
    configuration (any training dropout) of each of the ``k`` best fused strategies, and the best
    BASELINE configuration when it is not among them."""
    fused = configs[configs["family"] != UNIMODAL].drop_duplicates("variant")
    rows = fused.head(k)
    base = fused[fused["variant"] == BASELINE]
    if len(base) and BASELINE not in set(rows["variant"]):
        rows = pd.concat([rows, base.head(1)])
    return rows

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


def same_config(a, b) -> bool:
    """Whether two configs rows (or picks, possibly None) are the same configuration: variant and dropout."""
    return a is not None and b is not None and a["variant"] == b["variant"] and a["dropout"] == b["dropout"]


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


def _task(runs: pd.DataFrame) -> str:
    """The runs' task (the most common `task` param; the reader sets it on every run)."""
    values = runs[TASK].dropna().astype(str) if TASK in runs else pd.Series(dtype=str)
    task = str(values.value_counts().index[0]) if len(values) else DEFAULT_TASK
    return task if task in TASK_METRICS else DEFAULT_TASK


def _ranking(runs: pd.DataFrame, task: str = DEFAULT_TASK) -> tuple[str, bool, str]:
    """(ranking key, whether the runs declared one, a note when the declared one cannot be used)."""
    values = runs[RANKING_METRIC].dropna().astype(str) if RANKING_METRIC in runs else pd.Series(dtype=str)
    default = DEFAULT_RANKINGS[task]
    if values.empty:
        return default, False, ""
    counts = values.value_counts()
    declared = str(counts.index[0])
    note = ""
    if len(counts) > 1:
        note = (f"The runs disagree on the ranking metric ({', '.join(f'`{v}` {k}' for v, k in counts.items())}); "
                f"the most common, `{declared}`, is used. ")
    instead = f"ranked by {metric_label(default)} instead."
    if declared not in RANKING_METRICS and declared not in TASK_METRICS[task]:
        return default, True, note + f"Unknown ranking metric `{declared}`: " + instead
    column = metric_spec(declared)[0]
    if column not in runs or runs[column].notna().sum() == 0:
        return default, True, note + f"The dataset is ranked by `{declared}`, but no run logged `{column}`: " + instead
    return declared, True, note.strip()


def _logged(runs: pd.DataFrame, metric: str) -> bool:
    column = metric_spec(metric)[0]
    return column in runs and bool(runs[column].notna().any())


def _suffixes(runs: pd.DataFrame, prefix: str) -> list[str]:
    return [c[len(prefix):] for c in runs.columns if c.startswith(prefix) and runs[c].notna().any()]


def _data_rows(runs: pd.DataFrame) -> dict[str, dict[str, int]]:
    """split -> modalities present ("a-b") -> rows, from the `data_rows.<split>.<mods>` metrics (the
    largest count logged, should runs disagree)."""
    out: dict[str, dict[str, int]] = {}
    for column in runs.columns:
        if not column.startswith(DATA_ROWS_PREFIX) or runs[column].notna().sum() == 0:
            continue
        split, _, mods = column[len(DATA_ROWS_PREFIX):].partition(".")
        if split and mods:
            out.setdefault(split, {})[mods] = int(runs[column].max())
    return out


def _logged_metric(runs: pd.DataFrame, prefix_of, preferred: str) -> str:
    """The preferred metric when the runs logged `prefix_of(preferred)` columns, else accuracy (runs of
    results schema 1 made without per-metric scores logged subsets and curves in accuracy only, which no
    upgrade can supply), else the preferred one."""
    for metric in (preferred, "accuracy"):
        if _suffixes(runs, prefix_of(metric)):
            return metric
    return preferred


def analyse(name: str, runs: pd.DataFrame, problems: pd.DataFrame) -> DatasetAnalysis:
    task = _task(runs)
    ranking, declared, note = _ranking(runs, task)
    subset_key = _logged_metric(runs, subset_prefix, ranking)
    curve_key = _logged_metric(runs, missing_prefix, ranking)
    subsets = sorted(set(_suffixes(runs, subset_prefix(subset_key))), key=lambda s: (-len(subset_modalities(s)), s))
    rates = sorted(int(s) for s in _suffixes(runs, missing_prefix(curve_key)) if s.isdigit())
    higher = metric_spec(ranking)[1]
    # tuning gain in the ranking metric where its default-hyperparameter value is logged, else in accuracy
    tuning = ranking if _default_column(runs, ranking) or not _default_column(runs, "accuracy") else "accuracy"
    # the task's metrics as columns (acc-2 only where logged), and the ranking metric should it be another
    shown = [m for m in TASK_METRICS[task] if m != SIGN_ACCURACY or _logged(runs, m)]
    shown += [ranking] if ranking not in shown else []
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
        gain, gain_ci = mean_ci95(tuning_gains(group, tuning)) if len(group) else nan2
        n_collapsed, n_collapsed_of = _flag(group, COLLAPSED)
        n_not_converged, n_not_converged_of = _flag(group, NOT_CONVERGED)
        row = {
            "variant": variant, "dropout": dropout, "strategy": source["strategy"].iloc[0],
            "family": source["family"].iloc[0], "n": len(group), "seeds": sorted(group["seed"].tolist()),
            "n_failed": int((bad["status"] == "failed").sum()), "n_unfinished": int((bad["status"] != "failed").sum()),
            "tuning_gain": gain, "tuning_gain_ci": gain_ci,
            "n_collapsed": n_collapsed, "n_collapsed_of": n_collapsed_of,
            "n_not_converged": n_not_converged, "n_not_converged_of": n_not_converged_of,
            "marked": bool(n_collapsed or n_not_converged), "stop_reasons": _stop_reasons(group),
        }
        for metric in dict.fromkeys(ALL_METRICS + (ranking,)):  # every metric a column: nan where not logged
            column = metric_spec(metric)[0]
            row[metric], row[metric + "_ci"] = mean_ci95(group[column]) if len(group) and column in group else nan2
        default_column = _default_column(group, tuning)
        row["default_score"] = _mean(group[default_column]) if default_column else float("nan")
        for key, column in (("robustness", "robustness"), ("default_accuracy", "default_test_accuracy"),
                            ("infer_sps", "inference_samples_per_s"), ("train_sps", "train_samples_per_s"),
                            ("params", "param_count"), ("epochs_run", EPOCHS_RUN), ("best_epoch", BEST_EPOCH),
                            ("largest_class_share", LARGEST_CLASS_SHARE), ("val_score", "best_val_score")):
            row[key] = _mean(group[column]) if column in group else float("nan")
        row["robustness_n"] = int(group["robustness"].notna().sum()) if "robustness" in group else 0
        if n_collapsed:  # a (partly) constant predictor has no robustness to speak of
            row["robustness"], row["robustness_n"] = float("nan"), 0
        row["memory"] = _mean(group[memory_key]) if memory_key and memory_key in group else float("nan")
        for s in subsets:
            row[f"subset:{s}"] = _mean(group[subset_prefix(subset_key) + s])
        for r in rates:
            row[f"missing:{r}"] = _mean(group[missing_metric(r / 100, missing_prefix(curve_key))])
        rows.append(row)
    configs = pd.DataFrame(rows)
    # reference predictors, logged with every cell of the dataset: "reference_<metric>" (the task's constant
    # predictor), "chance_<metric>", "zero_shot_<metric>" and "zero_shot_adapted_<metric>"
    references = {kind: {m: v for m in ALL_METRICS if (v := _constant(runs, f"{kind}_{m}")) == v}
                  for kind in (REFERENCE_PREFIX.rstrip("_"), "chance", ZERO_SHOT_PREFIX.rstrip("_"),
                               ZERO_SHOT_ADAPTED_PREFIX.rstrip("_"))}
    majority = references[REFERENCE_PREFIX.rstrip("_")]
    analysis = DatasetAnalysis(
        name, configs, runs, problems, subsets, rates, memory_key, ranking=ranking, ranking_declared=declared,
        ranking_note=note, task=task, metrics=tuple(shown), higher_is_better=higher, subset_metric=subset_key,
        curve_metric=curve_key, tuning_metric=tuning, majority=majority, chance=references["chance"],
        zero_shot=references[ZERO_SHOT_PREFIX.rstrip("_")],
        zero_shot_adapted=references[ZERO_SHOT_ADAPTED_PREFIX.rstrip("_")],
        judged=any(c in runs and runs[c].notna().any() for c in (COLLAPSED, NOT_CONVERGED)),
        trained=any(c in runs and runs[c].notna().any() for c in (EPOCHS_RUN, BEST_EPOCH, STOP_REASON)),
        data_rows=_data_rows(pd.concat([runs, problems], ignore_index=True) if len(problems) else runs))
    if configs.empty:
        return analysis
    score = configs[analysis.score]
    configs["rank"] = score.where(~configs["marked"] & (configs["n"] > 0)).rank(method="min", ascending=not higher)
    _fusion_gain(configs, analysis.score, higher)
    _fusion_gain_any_dropout(configs, analysis.score, higher)
    analysis.tests = holm_tests(_baseline_tests(configs, runs, metric_spec(ranking)[0]))  # Holm over the dataset
    return analysis


def analyse_matrix(ok: pd.DataFrame, problems: pd.DataFrame) -> list[DatasetAnalysis]:
    """One analysis per dataset of a matrix (finished runs `ok`, failed and unfinished `problems`),
    sorted by dataset name; a dataset with only failed or unfinished runs is analysed too."""
    datasets = sorted(set(ok["dataset"]) | set(problems["dataset"])) if len(ok) or len(problems) else []
    return [analyse(dataset, ok[ok["dataset"] == dataset] if len(ok) else ok, problems[problems["dataset"] == dataset])
            for dataset in datasets]


def _default_column(group: pd.DataFrame, ranking: str) -> str | None:
    """The MLflow metric holding the ranking metric with the strategy's default hyperparameters,
    "default_test_<metric>", where some run of ``group`` logged it."""
    column = f"default_{metric_spec(ranking)[0]}"
    return column if column in group and group[column].notna().any() else None


def tuning_gains(runs: pd.DataFrame, metric: str) -> pd.Series:
    """Per run: how much tuning improved `metric` (positive = better, whatever its direction): tuned − default
    (default − tuned when lower is better) where "default_test_<metric>" is logged, else NaN."""
    column, higher = metric_spec(metric)
    default = _default_column(runs, metric)
    if default and column in runs:
        gain = runs[column] - runs[default]
        return gain if higher else -gain
    return pd.Series(float("nan"), index=runs.index, dtype=float)


def _fusion_gain(configs: pd.DataFrame, score: str, higher: bool = True) -> None:
    """How much better the mean score is than the best unimodal baseline's at the same training dropout
    (positive = better: score − baseline, or baseline − score when lower is better). The baseline is the
    best unmarked unimodal configuration (a marked one only when all are marked)."""
    configs["best_unimodal"], configs["best_unimodal_label"], configs["fusion_gain"] = None, None, float("nan")
    for dropout, group in configs.groupby("dropout"):
        uni = group[(group["family"] == UNIMODAL) & (group["n"] > 0) & group[score].notna()]
        if uni.empty:
            continue
        if (~uni["marked"]).any():
            uni = uni[~uni["marked"]]
        best = uni.loc[uni[score].idxmax() if higher else uni[score].idxmin()]
        index = group.index
        configs.loc[index, "best_unimodal"] = best["variant"]
        configs.loc[index, "best_unimodal_label"] = config_label(best)
        configs.loc[index, "fusion_gain"] = (group[score] - best[score]) * (1 if higher else -1)


def _fusion_gain_any_dropout(configs: pd.DataFrame, score: str, higher: bool = True) -> None:
    """Fusion gain against the best unimodal baseline at ANY training dropout: the unimodal configuration
    (variant, dropout) with the best mean validation score (`best_val_score`, in the ranking metric's
    direction; never a test score), unmarked first. Columns "best_unimodal_any" (its label, with its dropout)
    and "fusion_gain_any" (positive = better, like "fusion_gain"); NaN where no unimodal run logged it."""
    configs["best_unimodal_any"], configs["fusion_gain_any"] = None, float("nan")
    if "val_score" not in configs:
        return
    uni = configs[(configs["family"] == UNIMODAL) & (configs["n"] > 0) & configs["val_score"].notna()
                  & configs[score].notna()]
    if uni.empty:
        return
    if (~uni["marked"]).any():
        uni = uni[~uni["marked"]]
    best = uni.loc[uni["val_score"].idxmax() if higher else uni["val_score"].idxmin()]
    configs["best_unimodal_any"] = f"{config_label(best)} (train dropout {best['dropout']})"
    configs["fusion_gain_any"] = (configs[score] - best[score]) * (1 if higher else -1)


def _baseline_tests(configs: pd.DataFrame, runs: pd.DataFrame, metric: str = "test_accuracy"
                    ) -> dict[tuple[str, float], PairedTest]:
    """Paired t-test of each configuration's `metric` against BASELINE at the same training dropout, paired by seed."""
    tests = {}
    # one value per (variant, dropout, replicate), even if a cell was logged twice; a replicate is a
    # seed, or a (fold, seed) pair with k-fold cross-validation (reporting/replicates.py)
    keys = replicate_keys(runs)
    by_seed = runs.groupby(["variant", "dropout", *keys])[metric].mean()
    for _, row in configs[(configs["n"] > 0) & (configs["variant"] != BASELINE)].iterrows():
        key = (BASELINE, row["dropout"])
        if key not in by_seed.index.droplevel(keys):
            continue
        mine, base = by_seed.loc[(row["variant"], row["dropout"])], by_seed.loc[key]
        seeds = sorted(set(mine.index) & set(base.index))
        tests[(row["variant"], row["dropout"])] = paired_ttest(mine.loc[seeds].tolist(), base.loc[seeds].tolist())
    return tests


def marked_counts(a: DatasetAnalysis) -> str:
    """"2 collapsed, 1 not converged" over the dataset's configurations (one may be both)."""
    marked = a.marked
    parts = [f"{int((marked[key] > 0).sum())} {words}" for key, words in
             (("n_collapsed", "collapsed"), ("n_not_converged", "not converged")) if (marked[key] > 0).any()]
    return ", ".join(parts)
