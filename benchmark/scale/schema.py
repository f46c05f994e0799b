"""The results schema shared by the writer (tracking) and the reader (reporting): the MLflow
experiment, the tag names, and how metric names encode modality subsets and missing rates.
Plain Python only: reporting imports it where torch is not installed."""

from __future__ import annotations

EXPERIMENT = "fusebench"
TAG_KIND, TAG_MATRIX, TAG_CELL, TAG_STATUS, TAG_ERROR = (
    "fusebench.kind", "fusebench.matrix_id", "fusebench.cell_hash", "fusebench.status", "fusebench.error")

# Per-subset and per-missing-rate test accuracies: "test_accuracy_subset.image-text",
# "test_accuracy_missing.30". MLflow metric names cannot hold "+", so a subset's modalities
# are joined with "-" (card loading allows only letters, digits and "_" in modality names).
SUBSET_PREFIX, MISSING_PREFIX = "test_accuracy_subset.", "test_accuracy_missing."
SUBSET_SEPARATOR = "-"


def subset_metric(modalities: tuple[str, ...] | list[str], metric: str = "accuracy") -> str:
    """("image", "text") -> "test_accuracy_subset.image-text"; with metric "mae": "test_mae_subset.image-text"."""
    return f"test_{metric}_subset." + SUBSET_SEPARATOR.join(modalities)


def subset_modalities(suffix: str) -> list[str]:
    """The modalities of a subset metric's suffix: "image-text" -> ["image", "text"]."""
    return suffix.split(SUBSET_SEPARATOR)


def subset_label(suffix: str) -> str:
    """A subset for people: "image-text" -> "image + text"."""
    return " + ".join(subset_modalities(suffix))


# Rows per combination of modalities present in the data itself (naturally missing modalities),
# logged on every cell run: "data_rows.train.image-text" = rows of train with both, and
# "data_rows.train.text" = rows with text only. Combinations that occur in no row are not logged.
DATA_ROWS_PREFIX = "data_rows."


def data_rows_metric(split: str, modalities: tuple[str, ...] | list[str]) -> str:
    """("train", ("image", "text")) -> "data_rows.train.image-text" (modalities in sorted order)."""
    return f"{DATA_ROWS_PREFIX}{split}.{SUBSET_SEPARATOR.join(sorted(modalities))}"


def missing_metric(rate: float, prefix: str = MISSING_PREFIX) -> str:
    """0.3 -> "test_accuracy_missing.30" (the rate in whole percent, two digits at least)."""
    return f"{prefix}{int(round(rate * 100)):02d}"


# The same curve in macro-F1 ("test_macro_f1_missing.30"): the robustness score of a dataset
# ranked by macro-F1 is measured on it.
MISSING_MACRO_F1_PREFIX = "test_macro_f1_missing."

# The training protocol's record of each cell (benchmark/train/loop.py, cell.py): how long the
# tuned retrain ran and why it stopped, and its learning curves as MLflow step metrics
# (step = epoch, 1-based).
EPOCHS_RUN, BEST_EPOCH = "epochs_run", "best_epoch"
STOP_REASON = "stop_reason"  # param and tag: "plateau" (early stopping) or "cap" (the profile's epoch cap)
STACKED_WITH = "stacked_with"  # param: how many models were trained in one stacked computation with this run (1: alone)
STOP_PLATEAU, STOP_CAP = "plateau", "cap"
CURVE_TRAIN_LOSS, CURVE_VAL_METRIC, CURVE_LR = "curve.train_loss", "curve.val_metric", "curve.lr"

# Trust marks (0.0 / 1.0 metrics, decided by the writer so that every reader applies one rule):
# collapsed: the test predictions are (nearly) one class, or macro-F1 does not beat the
# majority-class predictor's; not_converged: stopped by the epoch cap while still improving.
COLLAPSED, NOT_CONVERGED = "collapsed", "not_converged"
LARGEST_CLASS_SHARE = "largest_predicted_class_share"  # share of test predictions in the most-predicted class
# Reference predictors on the same test split, logged with every cell of the dataset.
MAJORITY_ACCURACY, MAJORITY_MACRO_F1, CHANCE_ACCURACY = "majority_accuracy", "majority_macro_f1", "chance_accuracy"
# Which test metric ranks the dataset's leaderboard (the card's `ranking_metric`), logged as a param:
# "accuracy" -> metric "test_accuracy", "macro_f1" -> metric "test_macro_f1".
RANKING_METRIC = "ranking_metric"

# Task types (the card's `task`, logged as the param `task` on every cell run; a run without it
# is multiclass) and the test metrics each task logs: "test_<metric>" on the full input,
# "test_<metric>_subset.<mods>" per modality subset and "test_<metric>_missing.NN" per missing rate.
TASK = "task"
TASKS = ("multiclass", "binary", "multilabel", "regression")
DEFAULT_TASK = "multiclass"
SIGN_ACCURACY = "sign_accuracy"  # regression only, when the card asks (MOSI's acc-2)
TASK_METRICS = {
    "multiclass": ("accuracy", "macro_f1"),
    "binary": ("auroc", "f1", "accuracy"),
    "multilabel": ("micro_f1", "macro_f1", "mean_ap"),
    "regression": ("mae", "rmse", "pearson_r"),
}
# The ranking metric of a card that names none.
DEFAULT_RANKING_METRICS = {"multiclass": "accuracy", "binary": "auroc", "multilabel": "micro_f1", "regression": "mae"}
# A ranking-metric name -> (its MLflow metric name, whether higher is better).
RANKING_METRICS = {
    "accuracy": ("test_accuracy", True), "macro_f1": ("test_macro_f1", True),
    "auroc": ("test_auroc", True), "f1": ("test_f1", True),
    "micro_f1": ("test_micro_f1", True), "mean_ap": ("test_mean_ap", True),
    "mae": ("test_mae", False), "rmse": ("test_rmse", False), "pearson_r": ("test_pearson_r", True),
    SIGN_ACCURACY: ("test_sign_accuracy", True),
}


def task_metrics(task: str, sign_accuracy: bool = False) -> tuple[str, ...]:
    """The metrics a task logs, e.g. "binary" -> ("auroc", "f1", "accuracy")."""
    return TASK_METRICS[task] + ((SIGN_ACCURACY,) if sign_accuracy and task == "regression" else ())


def higher_is_better(metric: str) -> bool:
    """Whether a larger ``metric`` is better (False for mae and rmse)."""
    return RANKING_METRICS[metric][1]


def metric_name(metric: str) -> str:
    """"auroc" -> "test_auroc"."""
    return f"test_{metric}"


def subset_prefix(metric: str) -> str:
    """"auroc" -> "test_auroc_subset." (SUBSET_PREFIX for accuracy)."""
    return f"test_{metric}_subset."


def missing_prefix(metric: str) -> str:
    """"mae" -> "test_mae_missing." (MISSING_PREFIX for accuracy)."""
    return f"test_{metric}_missing."


# The reference predictor of the task (multiclass: majority class; binary: the training
# prevalence as a constant score; multilabel: each label's training prevalence; regression: the
# training mean) scored in each of the task's metrics on the test split: "reference_<metric>".
# Multiclass runs also log MAJORITY_ACCURACY / MAJORITY_MACRO_F1 / CHANCE_ACCURACY as before.
REFERENCE_PREFIX = "reference_"


def reference_metric(metric: str) -> str:
    """"mae" -> "reference_mae"."""
    return REFERENCE_PREFIX + metric
