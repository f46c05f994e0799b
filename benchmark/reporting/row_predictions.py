"""The per-row test predictions each cell run logged (vocabulary.PREDICTIONS_ARTIFACT), read with
MLflow's client from the runs' tracking store, each run at most once. Runs recorded before the
artifact existed have none: the report then falls back to seed-only intervals and says so."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.vocabulary import PREDICTIONS_ARTIFACT

FULL = "full"  # the condition with every modality present


@dataclass(frozen=True)
class RowPredictions:
    """One run's test rows: ``truth`` (N,) or (N, L), and predictions per condition ("full", or the
    missing rate in percent as two digits, "90"), each shaped like Task.predictions makes them."""

    task: str
    truth: np.ndarray
    conditions: dict[str, np.ndarray]


def parse(content: dict) -> RowPredictions | None:
    """The artifact's JSON as arrays; None when it is not the expected shape."""
    try:
        truth = np.asarray(content["truth"], dtype=float)
        conditions = {FULL: np.asarray(content["full"], dtype=float)}
        conditions.update({str(k): np.asarray(v, dtype=float) for k, v in (content.get("missing") or {}).items()})
    except (KeyError, TypeError, ValueError):
        return None
    if any(len(p) != len(truth) for p in conditions.values()):
        return None
    return RowPredictions(str(content.get("task", "multiclass")), truth, conditions)


class PredictionStore:
    """Fetches per-row predictions by run id from one tracking store (None where a run has none)."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._client = None
        self._cache: dict[str, RowPredictions | None] = {}

    def get(self, run_id: str) -> RowPredictions | None:
        if run_id not in self._cache:
            self._cache[run_id] = self._load(run_id)
        return self._cache[run_id]

    def _load(self, run_id: str) -> RowPredictions | None:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        with tempfile.TemporaryDirectory() as folder:
            try:
                path = self._client.download_artifacts(run_id, PREDICTIONS_ARTIFACT, folder)
                content = json.loads(Path(path).read_text(encoding="utf-8"))
            except (MlflowException, OSError, ValueError):
                return None
        return parse(content) if isinstance(content, dict) else None
