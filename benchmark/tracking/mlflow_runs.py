"""MLflow tracking: one parent run per matrix, one nested child run per cell. Cells are
recognised by a hash of their configuration so finished work is never logged twice. Every run
written here carries the results-schema version it is written in (vocabulary.TAG_SCHEMA)."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from benchmark.paths import REPO_ROOT
from benchmark.vocabulary import CURVE_LR, CURVE_TRAIN_LOSS, CURVE_VAL_METRIC, TAG_REUSED_FROM
from benchmark.vocabulary import EXPERIMENT, TAG_CELL, TAG_ERROR, TAG_KIND, TAG_MATRIX, TAG_STATUS
from benchmark.vocabulary import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG
from benchmark.vocabulary import CELL_TAGS, RESULTS_SCHEMA, TAG_ERROR_LINE, TAG_ERROR_TYPE, TAG_SCHEMA, schema_version
PACKAGES = ("torch", "torchvision", "transformers", "datasets", "mlflow", "optuna", "scikit-learn", "numpy")


# The MLflow REST client retries a dead server for minutes on its own (7 retries, backoff
# factor 2). fusebench retries outages itself with a bounded budget (FUSEBENCH_RETRY_S), so
# the client's retries are shortened unless the user set them.
MLFLOW_CLIENT_RETRY_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


def _client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    from benchmark.stores.database import first_use_lock

    for name, value in MLFLOW_CLIENT_RETRY_DEFAULTS.items():
        os.environ.setdefault(name, value)
    with first_use_lock(tracking_uri, "mlflow"):  # the client opens the store: a new database's tables and migrations
        return MlflowClient(tracking_uri=tracking_uri)


def experiment_id(tracking_uri: str, name: str = EXPERIMENT) -> str:
    client = _client(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.tags.get(EXPERIMENT_KIND_TAG) is None:  # made by an older fusebench: record its kind too
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return experiment.experiment_id
    artifact_location = None
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///"):])
        artifact_location = (db.parent / "mlartifacts").resolve().as_uri()
    # MLflow 3's experiment kind: "Machine learning", not GenAI (the UI's view switch: tracking/ui.py).
    return client.create_experiment(name, artifact_location=artifact_location,
                                    tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})


def machine() -> str:
    """This machine in words, for the report's header: cores, CPU model, memory, GPU (without
    importing torch: from /proc and nvidia-smi where they exist)."""
    cores = os.cpu_count() or 0
    model, memory = platform.processor() or platform.machine(), ""
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), model)
        with open("/proc/meminfo") as handle:
            kib = next(int(line.split()[1]) for line in handle if line.startswith("MemTotal:"))
            memory = f", {kib / 2**20:.0f} GiB memory"
    except (OSError, StopIteration, ValueError):
        pass
    try:
        gpus = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=10).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        gpus = []
    return f"{cores} cores ({model}){memory}; " + (f"GPU: {', '.join(gpus)}" if gpus else "CPU only")


def environment() -> dict[str, str]:
    info = {"python": platform.python_version(), "platform": platform.platform(), "machine": machine()}
    for package in PACKAGES:
        try:
            info[f"pkg.{package}"] = version(package)
        except PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        info["git_commit"] = commit.stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        info["git_dirty"] = str(bool(dirty.stdout.strip()))
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = "unknown"
    return info


class MatrixTracker:
    """Parent run for one matrix; creates, finds and finishes its child runs."""

    def __init__(self, tracking_uri: str, matrix_id: str, config: dict[str, Any], device: str,
                 create: bool = True) -> None:
        self.tracking_uri = tracking_uri
        self.client = _client(tracking_uri)
        self.experiment_id = experiment_id(tracking_uri)
        self.matrix_id = matrix_id
        self.parent_id = self._parent(config, device, create)

    def _parent(self, config: dict[str, Any], device: str, create: bool) -> str:
        existing = self.client.search_runs(
            [self.experiment_id], f"tags.`{TAG_KIND}` = 'matrix' and tags.`{TAG_MATRIX}` = '{self.matrix_id}'",
            max_results=1)
        if existing:
            run_id = existing[0].info.run_id
            if create:
                self.client.update_run(run_id, status="RUNNING")
            return run_id
        if not create:
            raise LookupError(f"matrix {self.matrix_id} has no parent run in {self.tracking_uri}; "
                              "start it with `fusebench bench` against the same tracking store")
        run = self.client.create_run(self.experiment_id, run_name=f"matrix {self.matrix_id}",
                                     tags={TAG_KIND: "matrix", TAG_MATRIX: self.matrix_id, "device": device,
                                           TAG_SCHEMA: str(RESULTS_SCHEMA)})
        env = environment()
        from mlflow.entities import Param, RunTag

        params = [Param(f"config.{k}", (v if isinstance(v, str) else json.dumps(v))[:6000]) for k, v in config.items()]
        tags = [RunTag(f"env.{k}", v) for k, v in env.items()]
        self.client.log_batch(run.info.run_id, params=params, tags=tags)
        self.client.log_dict(run.info.run_id, {"config": config, "environment": env, "device": device}, "matrix_config.json")
        return run.info.run_id

    def cell_runs(self, cell_hash: str | None = None) -> list:
        """Active cell runs of this matrix (of one cell when ``cell_hash`` is given)."""
        query = f"tags.`mlflow.parentRunId` = '{self.parent_id}' and tags.`{TAG_KIND}` = 'cell'"
        if cell_hash:
            query += f" and tags.`{TAG_CELL}` = '{cell_hash}'"
        return self.client.search_runs([self.experiment_id], query, max_results=50000)

    def is_finished(self, cell_hash: str) -> bool:
        return any(r.info.status == "FINISHED" and r.data.tags.get(TAG_STATUS) == "ok"
                   for r in self.cell_runs(cell_hash))

    def ended_cells(self, include_failed: bool = True) -> set[str]:
        """Hashes of this matrix's cells whose run finished, and, with ``include_failed``, of those
        whose run failed: the cells whose result this store holds."""
        ended = set()
        for run in self.cell_runs():
            status, state = run.data.tags.get(TAG_STATUS), run.info.status
            if (status == "ok" and state == "FINISHED") or (include_failed and status == "failed" and state == "FAILED"):
                ended.add(run.data.tags.get(TAG_CELL))
        return ended

    def discard_unfinished(self, cell_hash: str) -> int:
        """Delete earlier attempts at a cell that did not finish (killed or failed)."""
        count = 0
        for run in self.cell_runs(cell_hash):
            if not (run.info.status == "FINISHED" and run.data.tags.get(TAG_STATUS) == "ok"):
                self.client.delete_run(run.info.run_id)
                count += 1
        return count

    def start_cell(self, cell_hash: str, run_name: str, tags: dict[str, str]) -> str:
        """Open a cell's run. ``tags`` must hold the cell's identity (vocabulary.CELL_TAGS, made by
        vocabulary.cell_tags): the report reads a run that fails or never finishes from them alone
        (results schema 2); the run name is for people only."""
        missing = [name for name in CELL_TAGS if not tags.get(name)]
        if missing:
            raise ValueError(f"cell run {run_name!r}: identity tags {missing} not given (vocabulary.cell_tags "
                             "makes all of them); a failed run would be unreadable without them")
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags={
            "mlflow.parentRunId": self.parent_id, TAG_KIND: "cell", TAG_MATRIX: self.matrix_id,
            TAG_CELL: cell_hash, TAG_STATUS: "running", TAG_SCHEMA: str(RESULTS_SCHEMA), **tags})
        return run.info.run_id

    def finish_cell(self, run_id: str, params: dict[str, str], metrics: dict[str, float],
                    tags: dict[str, str], record: dict[str, Any],
                    steps: list[tuple[str, float, int]] = (), artifacts: dict[str, Any] | None = None) -> None:
        """Log a finished cell: its params, metrics (step 0), step metrics such as learning
        curves as (name, value, step) so the MLflow UI draws them, the full record as JSON."""
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        history = [Metric(name, value, now, step) for name, value, step in steps]
        for start in range(0, len(history), 1000):  # MLflow takes at most 1000 metrics per batch
            self.client.log_batch(run_id, metrics=history[start:start + 1000])
        self.client.log_dict(run_id, record, "run_result.json")
        for name, content in (artifacts or {}).items():  # e.g. vocabulary.CONFUSION_ARTIFACT
            self.client.log_dict(run_id, content, name)
        self.client.set_tag(run_id, TAG_STATUS, "ok")  # last write: marks the cell complete
        self.client.set_terminated(run_id, "FINISHED")

    def finished_elsewhere(self, cell_hash: str):
        """A finished run of this cell recorded under another matrix of the store, or None. The
        hash holds everything that makes the result (the cell, the budget, the tuning rule, the
        fingerprint of its inputs; benchmark/run/planning.py, cell_hash), so such a run is the
        result this matrix would compute: adding a seed or a strategy reruns nothing else."""
        query = (f"tags.`{TAG_KIND}` = 'cell' and tags.`{TAG_CELL}` = '{cell_hash}' and "
                 f"tags.`{TAG_STATUS}` = 'ok' and attributes.status = 'FINISHED'")
        runs = self.client.search_runs([self.experiment_id], query, max_results=10,
                                       order_by=["attributes.start_time ASC"])
        return next((r for r in runs if r.data.tags.get("mlflow.parentRunId") != self.parent_id), None)

    def adopt_cell(self, run_id: str, source) -> None:
        """Record ``source`` (a finished run of the same cell under another matrix) as this matrix's
        run ``run_id``: its params, metrics with their learning curves, tags and artifacts, with a
        tag naming the run it came from. The copy is in the source's results-schema version: what it
        holds is the source's record, in the source's shape (its identity tags included)."""
        import tempfile

        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        curves = [key for key in (CURVE_TRAIN_LOSS, CURVE_VAL_METRIC, CURVE_LR) if key in source.data.metrics]
        own = {"mlflow.parentRunId", TAG_MATRIX, TAG_STATUS, TAG_KIND}
        tags = {k: v for k, v in source.data.tags.items() if k not in own and not k.startswith("mlflow.")}
        tags[TAG_SCHEMA] = str(schema_version(source.data.tags))
        self.client.log_batch(
            run_id, metrics=[Metric(k, float(v), now, 0) for k, v in source.data.metrics.items() if k not in curves],
            params=[Param(k, v) for k, v in source.data.params.items()],
            tags=[RunTag(k, v) for k, v in {**tags, TAG_REUSED_FROM: source.info.run_id}.items()])
        history = [Metric(key, m.value, now, m.step) for key in curves
                   for m in self.client.get_metric_history(source.info.run_id, key)]
        for start in range(0, len(history), 1000):
            self.client.log_batch(run_id, metrics=history[start:start + 1000])
        with tempfile.TemporaryDirectory(prefix="fusebench-adopt-") as folder:
            for artifact in self.client.list_artifacts(source.info.run_id):
                if not artifact.is_dir:
                    self.client.log_artifact(run_id, self.client.download_artifacts(
                        source.info.run_id, artifact.path, folder))
        self.client.set_tag(run_id, TAG_STATUS, "ok")  # last write: marks the cell complete
        self.client.set_terminated(run_id, "FINISHED")

    def failed_cells(self) -> dict[str, tuple[str, str]]:
        """Cell hash -> (run name, first line of the error) for cells whose latest run failed."""
        failed = {}
        for run in self.cell_runs():
            tags = run.data.tags
            if tags.get(TAG_STATUS) == "failed":
                if schema_version(tags) >= 2:
                    line = tags.get(TAG_ERROR_LINE, "")
                else:  # version 1 kept the error only as one text
                    line = next(iter((tags.get(TAG_ERROR) or "").splitlines()), "")
                failed[tags[TAG_CELL]] = (run.info.run_name, line)
        return failed

    def fail_cell(self, run_id: str, error: str, error_type: str) -> None:
        """Close a cell's run as failed: ``error`` is the message (its first line names the error,
        e.g. "RuntimeError: loss is NaN") with any traceback after it; ``error_type`` the exception's
        class name."""
        from mlflow.entities import RunTag

        line = next(iter(error.splitlines()), "")
        self.client.log_batch(run_id, tags=[RunTag(TAG_STATUS, "failed"), RunTag(TAG_ERROR, error[:4000]),
                                            RunTag(TAG_ERROR_TYPE, error_type), RunTag(TAG_ERROR_LINE, line[:4000])])
        self.client.set_terminated(run_id, "FAILED")

    def kill_cell(self, run_id: str) -> None:
        """Close an interrupted cell's run as KILLED (Ctrl-C): not failed, and discarded when the
        cell runs again."""
        self.client.set_tag(run_id, TAG_STATUS, "interrupted")
        self.client.set_terminated(run_id, "KILLED")

    def finish_matrix(self, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.parent_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
        self.client.set_terminated(self.parent_id, "FINISHED")

    def log_artifacts(self, folder: Path, artifact_path: str = "report") -> None:
        """Log the report folder under ``artifact_path``, and each PNG figure as an image of the
        parent run (key = file name without .png), which the UI shows in the run's image charts."""
        from PIL import Image

        self.client.log_artifacts(self.parent_id, str(folder), artifact_path)
        for png in sorted(Path(folder).glob("*.png")):
            with Image.open(png) as image:
                key = re.sub(r"[^A-Za-z0-9_\-. /]", "_", png.stem)  # the characters MLflow allows in a key
                self.client.log_image(self.parent_id, image.convert("RGB"), key=key, step=0, synchronous=True)
