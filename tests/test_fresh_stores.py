"""Two first-ever benches started at the same moment on fresh stores (issue 21, item 7): the race
while MLflow creates its database (its tables and alembic migrations) and Optuna creates its
own must not crash either of them. Both finish, with no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Two numeric columns per modality, encoded by `tabular` (no network, no model to load): the test
# is about the stores, so the data is as cheap as a bench allows.
CARD = """name: race
description: two tabular modalities (tests only)
origin: generated in tests
licence: CC0
source: {local: {format: csv, data_files: race.csv}}
label: y
split: {seed: 0, validation: 0.25, test: 0.25}
modalities:
  left: {columns: [a, b], encoder: tabular}
  right: {columns: [c, d], encoder: tabular}
"""


def _race_card(folder: Path) -> None:
    rows = ["a,b,c,d,y"] + [f"{i % 3},{(i * 7) % 5},{i % 2},{(i * 3) % 4},{'yes' if i % 2 else 'no'}"
                            for i in range(40)]
    (folder / "race.csv").write_text("\n".join(rows) + "\n")
    (folder / "race.yaml").write_text(CARD)


@pytest.mark.slow
def test_two_first_ever_benches_on_fresh_stores_both_finish(fusebench_home):
    _race_card(fusebench_home / "cards")
    for store in ("mlruns.db", "optuna.db"):
        assert not (fusebench_home / store).exists()  # fresh: the first bench creates both
    argv = [sys.executable, "-m", "benchmark.cli", "bench", "--profile", "smoke", "--datasets", "race",
            "--strategies", "concat", "--seeds", "0", "--dropout", "0", "--trials", "1", "--epochs", "1",
            "--device", "cpu", "--no-report"]
    benches = [subprocess.Popen(argv, cwd=REPO, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    outputs = []
    try:
        for bench in benches:
            outputs.append(bench.communicate(timeout=240))
    finally:
        for bench in benches:
            if bench.poll() is None:
                bench.kill()
    for bench, (out, err) in zip(benches, outputs):
        assert bench.returncode == 0 and "Traceback" not in err, f"exit {bench.returncode}\n{out}\n{err}"
    # One cell between them: run by one bench, found done (or run again, never twice recorded) by the other.
    from tests.helpers_runs import cell_runs, finished

    assert len(finished(cell_runs(os.environ["MLFLOW_TRACKING_URI"]))) == 1
