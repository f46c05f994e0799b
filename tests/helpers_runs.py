"""Helpers shared by the resume and multi-worker tests: inspect MLflow and Optuna stores."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
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
    from benchmark.tuning import budget_trials, is_final, open_storage
    import optuna

    storage = open_storage(storage_url)
    summaries = optuna.get_all_study_summaries(storage)
    assert len(summaries) == studies, [s.study_name for s in summaries]
    for summary in summaries:
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        finals = [t for t in study.get_trials(deepcopy=False) if "slot" in t.user_attrs and is_final(t)]
        slots = collections.Counter(t.user_attrs["slot"] for t in finals)
        assert sorted(slots) == list(range(trials)), (summary.study_name, slots)
        assert all(n == 1 for n in slots.values()), (summary.study_name, slots)
        assert len(budget_trials(study)) == trials
