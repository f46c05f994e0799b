"""RunResult: the plain, serialisable record of one finished matrix cell, and the
consistent MLflow names derived from it (documented in docs/protocol.md, "Metric and parameter names")."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from benchmark import vocabulary
from benchmark.train.reliance import reliance_metrics
from benchmark.vocabulary import dropout_label, metric_name, missing_metric, missing_prefix, reference_metric, subset_metric


@dataclass
class Cell:
    dataset: str
    strategy: str
    variant: str  # strategy name, or e.g. "unimodal[text]" for one-modality baselines
    # training modality dropout: one rate for every modality, or a rate per modality (("image", 0.5), ("text", 0.1)),
    # sorted by modality (vocabulary.dropout_label writes both; a float's hash payload is what it always was)
    dropout: float | tuple[tuple[str, float], ...]
    seed: int
    fixed_hparams: dict[str, Any] = field(default_factory=dict)
    fold: int | None = None  # k-fold cross-validation: the test fold (None: the card's fixed split)

    def study_name(self, matrix_budget: str, fingerprint: str = "", tuning_dropout=None) -> str:
        """The Optuna study shared by this cell's seeds, e.g. "emoji/concat/drop0.3/t4-e15-b64-p5/1a2b3c4d":
        ``drop`` is the training dropout rate its trials train at (``tuning_dropout``, by default the
        cell's own: under shared tuning the cells of every rate share the study of the middle rate);
        the last part is the start of the fingerprint of the cell's inputs (benchmark/run/identity.py),
        so a study is never continued once the card, an encoder, the strategy or the protocol changed."""
        rate = self.dropout if tuning_dropout is None else tuning_dropout
        name = f"{self.dataset}/{self.variant}/drop{dropout_label(rate)}/{matrix_budget}"
        name += "" if self.fold is None else f"/fold{self.fold}"  # each fold tuned on its own rows only
        return f"{name}/{fingerprint[:8]}" if fingerprint else name

    def tuning_key(self) -> str:
        """What a study of this cell tunes, whatever the budget, protocol or inputs: dataset,
        variant, training dropout rate and fold, e.g. "emoji/concat/drop0.3" (the seed of its
        sampler, benchmark/train/seeds.py)."""
        key = f"{self.dataset}/{self.variant}/drop{dropout_label(self.dropout)}"
        return key if self.fold is None else f"{key}/fold{self.fold}"

    def label(self) -> str:
        label = f"{self.dataset} · {self.variant} · dropout {dropout_label(self.dropout)} · seed {self.seed}"
        return label if self.fold is None else f"{label} · fold {self.fold}"


@dataclass
class RunResult:
    cell: Cell
    family: str
    hparams: dict[str, Any]
    training: dict[str, Any]
    # The task (param `task`) and its test scores in every metric of the task (vocabulary.task_metrics):
    # full input (metric -> score), per modality subset ("image+text" -> metric -> score), per missing
    # rate (rate -> metric -> score); multiclass accuracy is scores["accuracy"], and so on.
    task: str
    scores: dict[str, float]
    subset_scores: dict[str, dict[str, float]]
    missing_scores: dict[float, dict[str, float]]
    robustness: float
    # The defaults' retrain's test scores: metric -> score, in the ranking metric (and in accuracy for
    # multiclass), logged as "default_test_<metric>".
    default_scores: dict[str, float]
    best_val_score: float  # the best validation score of the tuned retrain, in the ranking metric
    param_count: int
    train_samples_per_s: float
    inference_samples_per_s: float
    latency_ms_per_batch: float
    seconds_per_epoch: float
    # peak_gpu_mem_mb, or peak_cpu_rss_mb + cpu_rss_growth_mb; and on every device
    # train_step_tensor_mb + activation_mb (benchmark/train/cost.py)
    memory: dict[str, float]
    device: str
    wall_seconds: float
    ranking_metric: str = "accuracy"  # the card's: "accuracy" or "macro_f1"
    epochs_run: int = 0
    best_epoch: int = 0
    stop_reason: str = vocabulary.STOP_CAP
    collapsed: bool = False
    not_converged: bool = False
    largest_class_share: float = float("nan")
    references: Any = None  # evaluation.References of the test split
    curves: dict[str, list[float]] = field(default_factory=dict)  # "train_loss", "val_metric", "lr": per epoch
    stacked_with: int = 1  # models trained in one stacked computation with this one (benchmark/train/stacked.py)
    # rows per split and combination of modalities present in the data: metric name -> count
    # ("data_rows.train.image-text", vocabulary.data_rows_metric; FeatureSet.data_row_counts)
    data_rows: dict[str, int] = field(default_factory=dict)
    # The full-input test confusion matrix of a classifying task ({"labels", "matrix"}; None otherwise),
    # logged as the artifact vocabulary.CONFUSION_ARTIFACT.
    confusion: dict | None = None
    # Per-row test predictions (vocabulary.PREDICTIONS_ARTIFACT; None where not measured): logged as an
    # artifact only, not repeated in the record.
    predictions: dict | None = None
    # only one modality missing at test time: modality -> rate -> metric -> score; robustness per modality
    modality_missing_scores: dict[str, dict[float, dict[str, float]]] = field(default_factory=dict)
    modality_robustness: dict[str, float] = field(default_factory=dict)
    zero_shot: dict[str, float] = field(default_factory=dict)  # zero-shot CLIP baseline: metric -> test score
    # the same baseline of a CLIP adapted to the card's pairs (encoder option adapt): metric -> test score
    zero_shot_adapted: dict[str, float] = field(default_factory=dict)
    # Calibration of a classifying task (benchmark/train/calibration.py; empty for regression): "ece",
    # "nll", "brier" -> value on the full input, per missing rate, with only one modality missing.
    calibration: dict[str, float] = field(default_factory=dict)
    missing_calibration: dict[float, dict[str, float]] = field(default_factory=dict)
    modality_missing_calibration: dict[str, dict[float, dict[str, float]]] = field(default_factory=dict)
    # Modality reliance (benchmark/train/reliance.py): modality -> the mean drop in the ranking metric when its
    # inputs are permuted across the test rows; logged with its shares and equity index (reliance_metrics).
    reliance: dict[str, float] = field(default_factory=dict)
    # Energy (benchmark/train/energy.py): the tuned retrain's share of its training group's energy (Wh), the
    # energy of 1,000 full-input inferences (J), and where they come from (vocabulary.ENERGY_SOURCE);
    # nan and "none" where no tracker could run.
    energy_train_wh: float = float("nan")
    energy_per_1k_inferences_j: float = float("nan")
    energy_source: str = vocabulary.ENERGY_NONE

    @property
    def tuning_gain(self) -> float:
        """How much tuning improved the test ranking metric over the defaults (positive: tuning
        helped; for mae and rmse, the decrease)."""
        sign = 1.0 if vocabulary.higher_is_better(self.ranking_metric) else -1.0
        return sign * (self.scores[self.ranking_metric] - self.default_scores[self.ranking_metric])

    def params(self) -> dict[str, str]:
        out = {
            "dataset": self.cell.dataset, "strategy": self.cell.strategy, "variant": self.cell.variant,
            "family": self.family, "seed": self.cell.seed, "modality_dropout": dropout_label(self.cell.dropout),
            "device": self.device, vocabulary.RANKING_METRIC: self.ranking_metric, vocabulary.STOP_REASON: self.stop_reason,
            vocabulary.STACKED_WITH: self.stacked_with, vocabulary.TASK: self.task,
            vocabulary.ENERGY_SOURCE: self.energy_source,
        }
        if self.cell.fold is not None:
            out[vocabulary.FOLD] = self.cell.fold
        out.update({f"hp.{k}": v for k, v in self.hparams.items()})
        out.update({f"train.{k}": v for k, v in self.training.items()})
        return {k: str(v) for k, v in out.items()}

    def metrics(self) -> dict[str, float]:
        out = {
            "robustness": self.robustness,
            "tuning_gain": self.tuning_gain,
            "best_val_score": self.best_val_score,
            "param_count": float(self.param_count),
            "train_samples_per_s": self.train_samples_per_s,
            "inference_samples_per_s": self.inference_samples_per_s,
            "latency_ms_per_batch": self.latency_ms_per_batch,
            "seconds_per_epoch": self.seconds_per_epoch,
            **self.memory,
            "wall_seconds": self.wall_seconds,
            vocabulary.EPOCHS_RUN: float(self.epochs_run),
            vocabulary.BEST_EPOCH: float(self.best_epoch),
            vocabulary.COLLAPSED: float(self.collapsed),
            vocabulary.NOT_CONVERGED: float(self.not_converged),
            vocabulary.LARGEST_CLASS_SHARE: self.largest_class_share,
        }
        for name, value in ((vocabulary.ENERGY_TRAIN_WH, self.energy_train_wh),
                            (vocabulary.ENERGY_PER_1K_INFERENCES_J, self.energy_per_1k_inferences_j)):
            if value == value:  # nan: no tracker could run, so no figure
                out[name] = value
        if out["robustness"] != out["robustness"]:  # undefined (collapsed, or no lead over the majority)
            del out["robustness"]
        if out[vocabulary.LARGEST_CLASS_SHARE] != out[vocabulary.LARGEST_CLASS_SHARE]:  # no classes (multilabel, regression)
            del out[vocabulary.LARGEST_CLASS_SHARE]
        if self.references is not None and self.task == "multiclass":
            out[vocabulary.MAJORITY_ACCURACY] = self.references.majority_accuracy
            out[vocabulary.MAJORITY_MACRO_F1] = self.references.majority_macro_f1
            out[vocabulary.CHANCE_ACCURACY] = self.references.chance_accuracy
        if self.references is not None:
            out.update({reference_metric(m): v for m, v in self.references.all_scores().items()})
        out.update({vocabulary.zero_shot_metric(m): v for m, v in self.zero_shot.items() if v == v})
        out.update({vocabulary.zero_shot_adapted_metric(m): v for m, v in self.zero_shot_adapted.items() if v == v})
        self._task_metrics(out)
        self._calibration_metrics(out)
        out.update(reliance_metrics(self.reliance))
        out.update({name: float(count) for name, count in self.data_rows.items()})
        for modality, by_rate in self.modality_missing_scores.items():
            out.update({vocabulary.modality_missing_metric(modality, rate, metric): v
                        for rate, scores in by_rate.items() for metric, v in scores.items()})
        out.update({vocabulary.modality_robustness_metric(m): v for m, v in self.modality_robustness.items() if v == v})
        return out

    def _task_metrics(self, out: dict[str, float]) -> None:
        """test_<metric>, test_<metric>_subset.<mods>, test_<metric>_missing.NN for every metric of
        the task; default_test_<metric> for each default score (the ranking metric, and accuracy for
        multiclass)."""
        for metric, value in self.scores.items():
            out[metric_name(metric)] = value
        for subset, scores in self.subset_scores.items():
            out.update({subset_metric(subset.split("+"), metric): v for metric, v in scores.items()})
        for rate, scores in self.missing_scores.items():
            out.update({missing_metric(rate, missing_prefix(metric)): v for metric, v in scores.items()})
        out.update({"default_" + metric_name(metric): v for metric, v in self.default_scores.items()})

    def _calibration_metrics(self, out: dict[str, float]) -> None:
        """test_<c>, test_<c>_missing.NN and test_<c>_missing_<modality>.NN for each calibration metric
        c (ece, nll, brier; vocabulary.CALIBRATION_METRICS) the evaluation measured."""
        out.update({metric_name(metric): v for metric, v in self.calibration.items()})
        for rate, values in self.missing_calibration.items():
            out.update({missing_metric(rate, missing_prefix(metric)): v for metric, v in values.items()})
        for modality, by_rate in self.modality_missing_calibration.items():
            out.update({vocabulary.modality_missing_metric(modality, rate, metric): v
                        for rate, values in by_rate.items() for metric, v in values.items()})

    def step_metrics(self) -> list[tuple[str, float, int]]:
        """The learning curves as MLflow step metrics: (name, value, epoch from 1)."""
        names = {"train_loss": vocabulary.CURVE_TRAIN_LOSS, "val_metric": vocabulary.CURVE_VAL_METRIC, "lr": vocabulary.CURVE_LR}
        return [(names[key], float(value), epoch + 1) for key, values in self.curves.items() if key in names
                for epoch, value in enumerate(values)]

    def artifacts(self) -> dict[str, dict]:
        """JSON artifacts of the run beside its record: artifact file name -> content."""
        out = {vocabulary.CONFUSION_ARTIFACT: self.confusion} if self.confusion else {}
        if self.predictions:
            out[vocabulary.PREDICTIONS_ARTIFACT] = self.predictions
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("predictions", None)  # its own artifact (artifacts())
        data["tuning_gain"] = self.tuning_gain
        return data
