"""Helpers shared by the resume and multi-worker tests: inspect MLflow and Optuna stores."""

from __future__ import annotations

import collections
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parent.parent


def cell_runs(uri: str):
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("fusebench")
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], "tags.`fusebench.kind` = 'cell'", max_results=10000)


def finished(runs):
    return [r for r in runs if r.info.status == "FINISHED" and r.data.tags.get("fusebench.status") == "ok"]


def fusebench(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "benchmark.cli", *args], cwd=REPO,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


class OutputWatch:
    """Reads a child's output on a thread as it comes, so a test can wait for a line the child
    prints (an event) instead of sleeping for a guessed time, and still read all of it at the end."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process, self._lines, self._lock = process, [], threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._lock:
                self._lines.append(line)

    def text(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def wait_for_text(self, needle: str, timeout: float) -> None:
        wait_for(lambda: needle in self.text() or self.process.poll() is not None, timeout, repr(needle))
        assert needle in self.text(), f"the process ended without printing {needle!r}:\n{self.text()}"

    def finish(self, timeout: float) -> str:
        """Waits for the process to exit and returns everything it printed."""
        self.process.wait(timeout=timeout)
        self._thread.join(timeout=10)
        return self.text()


# Two numeric columns per modality, encoded by `tabular` (no network, no model to load): for tests
# about stores and processes, the data is as cheap as a bench allows.
TABULAR_CARD = """name: {name}
description: two tabular modalities (tests only)
origin: generated in tests
licence: CC0
source: {{local: {{format: csv, data_files: {name}.csv}}}}
label: y
split: {{seed: 0, validation: 0.25, test: 0.25}}
modalities:
  left: {{columns: [a, b], encoder: tabular}}
  right: {{columns: [c, d], encoder: tabular}}
"""


def write_tabular_card(folder: Path, name: str) -> Path:
    """``<name>.csv`` (40 rows, labels yes/no) and its card ``<name>.yaml`` in ``folder``."""
    rows = ["a,b,c,d,y"] + [f"{i % 3},{(i * 7) % 5},{i % 2},{(i * 3) % 4},{'yes' if i % 2 else 'no'}"
                            for i in range(40)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.csv").write_text("\n".join(rows) + "\n")
    path = folder / f"{name}.yaml"
    path.write_text(TABULAR_CARD.format(name=name))
    return path


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def assert_each_cell_once(uri: str, expected_cells: int):
    """Every cell has exactly one active run and it finished; no other active cell runs."""
    runs = cell_runs(uri)
    by_hash = collections.Counter(r.data.tags["fusebench.cell_hash"] for r in runs)
    assert len(by_hash) == expected_cells, f"expected {expected_cells} cells, got {len(by_hash)}"
    assert all(n == 1 for n in by_hash.values()), f"duplicated cell runs: {by_hash}"
    assert len(finished(runs)) == expected_cells, [(r.info.status, r.data.tags.get("fusebench.status")) for r in runs]


def assert_trial_budget(storage_url: str, trials: int, studies: int):
    """Every study has exactly one final trial per budget slot: none missing, none duplicated."""
    from benchmark.stores.database import open_storage
    from benchmark.train.tuning import budget_trials, is_final, stale_trials
    import optuna

    storage = open_storage(storage_url)
    summaries = optuna.get_all_study_summaries(storage)
    assert len(summaries) == studies, [s.study_name for s in summaries]
    for summary in summaries:
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        stale = stale_trials(study)
        finals = [t for t in study.get_trials(deepcopy=False) if "slot" in t.user_attrs and is_final(t, stale)]
        slots = collections.Counter(t.user_attrs["slot"] for t in finals)
        assert sorted(slots) == list(range(trials)), (summary.study_name, slots)
        assert all(n == 1 for n in slots.values()), (summary.study_name, slots)
        assert len(budget_trials(study)) == trials


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(folder: Path, port: int | None = None):
    """A real MLflow tracking server on 127.0.0.1 with a SQLite backend and proxied artifacts
    under ``folder``; yields its http:// URI and stops it afterwards."""
    import urllib.request

    port = port or free_port()
    folder.mkdir(parents=True, exist_ok=True)
    log = open(folder / "server.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'server.db'}", "--artifacts-destination",
         str(folder / "artifacts")], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"

    def healthy():
        if process.poll() is not None:
            raise AssertionError(f"mlflow server exited with {process.returncode}; see {folder / 'server.log'}")
        try:
            return urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200
        except OSError:
            return False

    try:
        wait_for(healthy, timeout=120, what=f"mlflow server on {uri}")
        yield uri
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        process.wait(timeout=30)
        log.close()


def start_synthetic_cell(tracker, cell_hash: str, run_name: str, params: dict) -> str:
    """Opens a hand-written cell run as the worker opens one: its identity tags (vocabulary.cell_tags)
    taken from the params it will log when it finishes."""
    from benchmark.vocabulary import FOLD, cell_tags

    return tracker.start_cell(cell_hash, run_name, cell_tags(
        params["dataset"], params["strategy"], params["variant"], params["family"], params["modality_dropout"],
        int(params["seed"]), int(params[FOLD]) if FOLD in params else None))


def start_version1_cell(tracker, cell_hash: str, run_name: str, tags: dict) -> str:
    """Opens a cell run as fusebench wrote them before results schema 2: no schema tag and only the
    tags given (version 1 set the variant as `strategy` and the dataset), for tests of the reader's
    upgrade of older runs."""
    from benchmark.vocabulary import TAG_CELL, TAG_KIND, TAG_MATRIX, TAG_STATUS

    run = tracker.client.create_run(tracker.experiment_id, run_name=run_name, tags={
        "mlflow.parentRunId": tracker.parent_id, TAG_KIND: "cell", TAG_MATRIX: tracker.matrix_id,
        TAG_CELL: cell_hash, TAG_STATUS: "running", **tags})
    return run.info.run_id
