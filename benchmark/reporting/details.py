"""Per-run details the report shows for a few chosen runs only: the confusion-matrix artifact
(vocabulary.CONFUSION_ARTIFACT) and a step metric's history (a learning curve). Read with MLflow's
client from the same tracking store as the runs; nothing here imports torch."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from benchmark.vocabulary import CONFUSION_ARTIFACT


class RunDetails:
    """Fetches per-run artifacts and metric histories from one tracking store, each at most once."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._client = None
        self._confusions: dict[str, dict | None] = {}
        self._histories: dict[tuple[str, str], list[tuple[int, float]]] = {}

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def confusion(self, run_id: str) -> dict | None:
        """{"labels": [names], "matrix": [[counts]]} logged by the run, or None where the run has no
        such artifact (runs recorded before confusion matrices were logged, or a task without classes)."""
        if run_id not in self._confusions:
            self._confusions[run_id] = self._load_confusion(run_id)
        return self._confusions[run_id]

    def _load_confusion(self, run_id: str) -> dict | None:
        from mlflow.exceptions import MlflowException

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bar per downloaded file

        with tempfile.TemporaryDirectory() as folder:
            try:
                path = self.client.download_artifacts(run_id, CONFUSION_ARTIFACT, folder)
            except (MlflowException, OSError):
                return None
            try:
                content = json.loads(Path(path).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
        labels, matrix = content.get("labels"), content.get("matrix")
        if not (isinstance(labels, list) and isinstance(matrix, list) and len(matrix) == len(labels)
                and all(isinstance(row, list) and len(row) == len(labels) for row in matrix)):
            return None
        return {"labels": [str(label) for label in labels], "matrix": matrix}

    def history(self, run_id: str, metric: str) -> list[tuple[int, float]]:
        """(step, value) of a step metric of the run, by step; empty when it was never logged."""
        key = (run_id, metric)
        if key not in self._histories:
            points = self.client.get_metric_history(run_id, metric)
            self._histories[key] = sorted((int(p.step), float(p.value)) for p in points)
        return self._histories[key]
