"""RunResult: the plain, serialisable record of one finished matrix cell, and the
consistent MLflow names derived from it (documented in the README)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from benchmark.scale.schema import missing_metric, subset_metric


@dataclass
class Cell:
    dataset: str
    strategy: str
    variant: str  # strategy name, or e.g. "unimodal[text]" for one-modality baselines
    dropout: float
    seed: int
    fixed_hparams: dict[str, Any] = field(default_factory=dict)

    def study_name(self, matrix_budget: str) -> str:
        return f"{self.dataset}/{self.variant}/drop{self.dropout:g}/{matrix_budget}"

    def label(self) -> str:
        return f"{self.dataset} · {self.variant} · dropout {self.dropout:g} · seed {self.seed}"


@dataclass
class RunResult:
    cell: Cell
    family: str
    hparams: dict[str, Any]
    training: dict[str, Any]
    test_accuracy: float
    test_macro_f1: float
    subset_accuracy: dict[str, float]
    missing_curve: dict[float, float]
    robustness: float
    default_test_accuracy: float
    best_val_accuracy: float
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

    @property
    def tuning_gain(self) -> float:
        return self.test_accuracy - self.default_test_accuracy

    def params(self) -> dict[str, str]:
        out = {
            "dataset": self.cell.dataset, "strategy": self.cell.strategy, "variant": self.cell.variant,
            "family": self.family, "seed": self.cell.seed, "modality_dropout": self.cell.dropout,
            "device": self.device,
        }
        out.update({f"hp.{k}": v for k, v in self.hparams.items()})
        out.update({f"train.{k}": v for k, v in self.training.items()})
        return {k: str(v) for k, v in out.items()}

    def metrics(self) -> dict[str, float]:
        out = {
            "test_accuracy": self.test_accuracy,
            "test_macro_f1": self.test_macro_f1,
            "robustness": self.robustness,
            "default_test_accuracy": self.default_test_accuracy,
            "tuning_gain": self.tuning_gain,
            "best_val_accuracy": self.best_val_accuracy,
            "param_count": float(self.param_count),
            "train_samples_per_s": self.train_samples_per_s,
            "inference_samples_per_s": self.inference_samples_per_s,
            "latency_ms_per_batch": self.latency_ms_per_batch,
            "seconds_per_epoch": self.seconds_per_epoch,
            **self.memory,
            "wall_seconds": self.wall_seconds,
        }
        for subset, acc in self.subset_accuracy.items():
            out[subset_metric(subset.split("+"))] = acc
        for rate, acc in self.missing_curve.items():
            out[missing_metric(rate)] = acc
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tuning_gain"] = self.tuning_gain
        return data
