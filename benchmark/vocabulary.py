"""The project's vocabulary, on the ground floor of `benchmark`: the tasks and their metrics, each
metric's direction, the MLflow experiment and tag names, and the codec by which metric names
encode modality subsets and missing rates. The writer (tracking) and the reader (reporting) share
it, and every package may import it. Plain Python that imports nothing of the project: reporting
imports it where torch is not installed."""

from __future__ import annotations

EXPERIMENT = "fusebench"
TAG_KIND, TAG_MATRIX, TAG_CELL, TAG_STATUS, TAG_ERROR = (
    "fusebench.kind", "fusebench.matrix_id", "fusebench.cell_hash", "fusebench.status", "fusebench.error")
# On a matrix's parent run: JSON {dataset: {strategy: reason}} of the strategies the matrix asked for
# that state a limit on how many modalities they take and so were not planned on that dataset.
TAG_NOT_APPLICABLE = "fusebench.not_applicable"

# The results schema: the shape of what a matrix's parent run and its cell runs record in MLflow (tags,
# params, metric names), logged as the tag TAG_SCHEMA on both. Raise it whenever that shape changes,
# and teach the reader (benchmark/reporting/fetch.py, UPGRADES) to bring the previous version up to the
# new one, so that nothing after the reader ever asks which version wrote a run. A run without the
# tag is version 1. What each version changed:
RESULTS_SCHEMA_CHANGES = {
    1: "every run written before the tag existed; its shape grew field by field: the identity params "
       "(dataset, variant, strategy, family) only as tags on the oldest runs; no `task` param (multiclass); "
       "no `ranking_metric` param (the task's default ranks); references as `majority_<metric>` only; "
       "`tuning_gain` without `default_test_accuracy` on the oldest; a failed or unfinished run carries only "
       "`dataset`, `family` and `strategy` (holding the variant) as tags, its dropout and seed only in its run "
       "name, its error as the first line of `fusebench.error`",
    2: "the tag itself, on parent and cell runs; every cell run carries its identity as tags from its "
       "start (CELL_TAGS: dataset, strategy, variant, family, modality_dropout, seed, and fold with "
       "k-fold; the tag `strategy` is the strategy, no longer the variant); a failed run carries its error "
       "type and first line (TAG_ERROR_TYPE, TAG_ERROR_LINE); every cell run logs `task`, `ranking_metric` "
       "and `default_test_<ranking metric>`; its `run_result.json` holds scores, subset_scores, "
       "missing_scores and default_scores per metric, without the multiclass copies (test_accuracy, "
       "subset_accuracy, missing_curve, ...) beside them",
}
RESULTS_SCHEMA = max(RESULTS_SCHEMA_CHANGES)
TAG_SCHEMA = "fusebench.results_schema"
# A failed cell run's error: its exception type ("RuntimeError") and the first line of its message
# ("RuntimeError: loss is NaN"), beside the full text with a short traceback (TAG_ERROR).
TAG_ERROR_TYPE, TAG_ERROR_LINE = "fusebench.error_type", "fusebench.error_line"
# The tags naming what a cell run is, set when it starts (so a run that fails or never finishes says
# which cell it was) and equal to the params of the same names that a finished run logs. FOLD too
# where the run is one fold of a k-fold cross-validation.
CELL_TAGS = ("dataset", "strategy", "variant", "family", "modality_dropout", "seed")


def schema_version(tags: dict) -> int:
    """The results-schema version of a run, from its tags (no TAG_SCHEMA: version 1)."""
    return int(tags.get(TAG_SCHEMA, 1))


def cell_tags(dataset: str, strategy: str, variant: str, family: str, dropout, seed: int,
              fold: int | None = None) -> dict[str, str]:
    """The CELL_TAGS of one cell run (and FOLD where given), as MLflow tag values; ``dropout`` as in
    dropout_label."""
    tags = {"dataset": dataset, "strategy": strategy, "variant": variant, "family": family,
            "modality_dropout": dropout_label(dropout), "seed": str(seed)}
    return tags if fold is None else {**tags, FOLD: str(fold)}

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
FOLD = "fold"  # param and tag: the test fold of a k-fold cross-validation run (absent: the card's fixed split)
STOP_PLATEAU, STOP_CAP = "plateau", "cap"
CURVE_TRAIN_LOSS, CURVE_VAL_METRIC, CURVE_LR = "curve.train_loss", "curve.val_metric", "curve.lr"
# On a cell run copied from another matrix's finished run of the same cell (same hash): that run's id.
TAG_REUSED_FROM = "fusebench.reused_from"
# Artifact of each multiclass/binary cell run: the full-input test predictions' confusion matrix,
# {"labels": [class names], "matrix": [[counts]]}, rows the true class, columns the predicted one.
CONFUSION_ARTIFACT = "confusion_matrix.json"
# Artifact of each cell run: its per-row test predictions, so that the report can resample test rows
# (a paired bootstrap over rows and seeds): {"task": kind, "truth": labels, "full": predictions with
# every modality present, "missing": {"90": predictions at the highest test-time missing rate}}, rows in
# the test split's order (the same rows, in the same order, for every strategy and seed of a split or
# fold). Predictions as train/tasks.py Task.predictions makes them: class ids (multiclass), the positive
# class's probability (binary), each label's probability (multilabel), the value (regression).
PREDICTIONS_ARTIFACT = "test_predictions.json"

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

# Energy of each cell (benchmark/train/energy.py, codecarbon's offline tracker): the tuned retrain's
# training energy in watt-hours and the energy of 1,000 full-input inferences in joules, plus the param
# saying where the figures come from: "measured: ..." (hardware energy counters: RAPL, NVML), "estimate: ..."
# (the CPU's rated power times its load; any figure with an estimated part says so first), or ENERGY_NONE
# (no tracker could run: no energy metrics are logged). Runs written before energy existed have none.
ENERGY_TRAIN_WH, ENERGY_PER_1K_INFERENCES_J = "energy_train_wh", "energy_per_1k_inferences_j"
ENERGY_SOURCE = "energy_source"
ENERGY_NONE, ENERGY_MEASURED, ENERGY_ESTIMATE = "none", "measured", "estimate"


def energy_is_estimate(source: str | None) -> bool:
    """Whether an energy_source value names an estimate (in whole or in part) rather than a measurement."""
    return not str(source or "").startswith(ENERGY_MEASURED + ":")

# How a model fills an absent modality (the profile's `missing_inputs`, a cell's fixed hyperparameter
# `missing_input`, logged as the param `hp.missing_input`): "zero" zero-fills it and tells the strategy
# it is absent (the default; runs without the param), "learned" puts a trainable vector per modality in
# its place and tells the strategy it is present (variant "<strategy>@learned").
MISSING_INPUT = "missing_input"
MISSING_ZERO, MISSING_LEARNED = "zero", "learned"
MISSING_INPUTS = (MISSING_ZERO, MISSING_LEARNED)
LEARNED_SUFFIX = "@learned"

# Whether the pretrained encoders are trained with the fusion model (the profile's `finetune`, a cell's
# fixed hyperparameter `finetune`, logged as the param `hp.finetune`): "frozen" (the default; runs without
# the param) reads cached features; "last_block" trains the last block of each pretrained encoder that
# supports it on cached activations of the frozen blocks below; "full" trains the whole encoder on raw
# inputs (benchmark/features/finetune.py). A fine-tuned variant is "<strategy>@<mode>".
FINETUNE = "finetune"
FINETUNE_FROZEN, FINETUNE_LAST_BLOCK, FINETUNE_FULL = "frozen", "last_block", "full"
FINETUNE_MODES = (FINETUNE_FROZEN, FINETUNE_LAST_BLOCK, FINETUNE_FULL)


def finetune_of(fixed_hparams) -> str:
    """The fine-tuning mode of a cell's fixed hyperparameters ("frozen" when they do not name one)."""
    return str(dict(fixed_hparams or {}).get(FINETUNE, FINETUNE_FROZEN))


def finetune_suffix(mode: str) -> str:
    """The variant suffix of a fine-tuning mode: "@last_block", "@full" ("" for frozen)."""
    return "" if mode == FINETUNE_FROZEN else f"@{mode}"

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
# Calibration of a classifying task's probabilities (benchmark/train/calibration.py): expected
# calibration error (15 equal-width bins; top-label for multiclass), negative log-likelihood and Brier
# score, all lower is better, logged under the same names as the task's metrics: "test_ece" on the
# full input, "test_ece_missing.30" per missing rate, "test_ece_missing_image.30" with only image
# missing. Reported only: never a ranking metric, never used for a choice. Regression logs none.
CALIBRATION_METRICS = ("ece", "nll", "brier")
CALIBRATED_TASKS = ("multiclass", "binary", "multilabel")


def calibration_metrics(task: str) -> tuple[str, ...]:
    """The calibration metrics a task logs: CALIBRATION_METRICS for a classifying task, () for regression."""
    return CALIBRATION_METRICS if task in CALIBRATED_TASKS else ()


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


# The zero-shot CLIP baseline (multiclass cards whose image modality uses a CLIP encoder: hf-clip or
# open_clip): class names as prompts, each test row predicted as the most cosine-similar prompt, no training, scored in
# each of the task's metrics on the cell's test split: "zero_shot_<metric>", logged with every cell run.
ZERO_SHOT_PREFIX = "zero_shot_"


def zero_shot_metric(metric: str) -> str:
    """"accuracy" -> "zero_shot_accuracy"."""
    return ZERO_SHOT_PREFIX + metric


# The same baseline when the card's CLIP was first adapted to its own image-text pairs (the encoder
# option `adapt`): "zero_shot_adapted_<metric>", a reference row of its own.
ZERO_SHOT_ADAPTED_PREFIX = "zero_shot_adapted_"


def zero_shot_adapted_metric(metric: str) -> str:
    """"accuracy" -> "zero_shot_adapted_accuracy"."""
    return ZERO_SHOT_ADAPTED_PREFIX + metric


# Training modality dropout (the param `modality_dropout`, a cell's study name and run label): one
# rate for every modality ("0.3"), or a rate per modality ("image=0.5,text=0.1", modalities in sorted
# order; a modality not named is never dropped). The report's "dropout" column holds this label.
def dropout_label(dropout) -> str:
    """0.3 -> "0.3"; "0.30" -> "0.3"; {"text": 0.1, "image": 0.5} or (("image", 0.5), ("text", 0.1))
    -> "image=0.5,text=0.1"; None / NaN -> "?"."""
    if dropout is None:
        return "?"
    if isinstance(dropout, dict):
        dropout = tuple(dropout.items())
    if isinstance(dropout, (tuple, list)):
        return ",".join(f"{m}={float(r):g}" for m, r in sorted(dropout))
    try:
        value = float(dropout)
    except (TypeError, ValueError):
        return str(dropout)  # already a per-modality label
    return "?" if value != value else f"{value:g}"


# Imbalanced missingness at test time: for each modality a curve where only that modality is removed
# (at rate NN%) while the others stay present, "test_<metric>_missing_<modality>.NN", and its robustness
# score in the ranking metric, "robustness_missing_<modality>" (benchmark/train/modality_curves.py).
MODALITY_ROBUSTNESS_PREFIX = "robustness_missing_"


def modality_missing_prefix(modality: str, metric: str = "accuracy") -> str:
    """("image", "accuracy") -> "test_accuracy_missing_image."."""
    return f"test_{metric}_missing_{modality}."


def modality_missing_metric(modality: str, rate: float, metric: str = "accuracy") -> str:
    """("image", 0.3) -> "test_accuracy_missing_image.30" (only image removed, from 30% of the rows)."""
    return missing_metric(rate, modality_missing_prefix(modality, metric))


def modality_robustness_metric(modality: str) -> str:
    """"image" -> "robustness_missing_image"."""
    return MODALITY_ROBUSTNESS_PREFIX + modality


# MLflow-native view (benchmark/tracking/mlflow_runs.py): the experiment's kind in MLflow 3 (the UI's
# "Machine learning" type, not "GenAI apps & agents"). The UI's global GenAI / Model-training switch
# is chosen by the page address (benchmark/tracking/ui.py), not by this tag.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
# Each cell run records its Optuna study: the study name and the number of the trial whose
# hyperparameters it retrained (tags), and the study's search space as one tag per parameter,
# "<param>_distribution" = the Optuna distribution (as optuna-integration's MLflowCallback logs it).
TAG_STUDY, TAG_BEST_TRIAL, DISTRIBUTION_SUFFIX = "optuna.study_name", "optuna.best_trial", "_distribution"


# Modality reliance (benchmark/train/reliance.py): per modality, the drop in the ranking metric when that
# modality's inputs are permuted across the test rows (positive = worse, whatever the metric's direction),
# "reliance_permuted.<modality>"; its share of the clipped reliances, "reliance_share.<modality>"; and how
# evenly the model relies on its modalities (normalised entropy of the shares, 1 = even, 0 = one modality),
# "reliance_equity". The "." keeps a modality named "equity" apart from the index. Reported only.
RELIANCE_PREFIX, RELIANCE_SHARE_PREFIX, RELIANCE_EQUITY = "reliance_permuted.", "reliance_share.", "reliance_equity"


def reliance_metric(modality: str) -> str:
    """"image" -> "reliance_permuted.image"."""
    return RELIANCE_PREFIX + modality


def reliance_share_metric(modality: str) -> str:
    """"image" -> "reliance_share.image"."""
    return RELIANCE_SHARE_PREFIX + modality


def reliance_modality(name: str, prefix: str = RELIANCE_PREFIX) -> str | None:
    """"reliance_permuted.image" -> "image" (with RELIANCE_SHARE_PREFIX: "reliance_share.image" -> "image");
    None for any other name."""
    return name[len(prefix):] if name.startswith(prefix) and len(name) > len(prefix) else None
