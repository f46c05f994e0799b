"""Two first-ever benches started at the same moment on fresh stores (issue 21, item 7): the race
while MLflow creates its database (its tables and alembic migrations) and Optuna creates its
own must not crash either of them. Both finish, with no traceback. They run two matrices (concat and
sum: two studies, as a study may be shared between matrices): one matrix has one driver at a time (tests/test_driver_lock.py), so a second bench on the
same matrix would be refused by design, not by the race."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers_runs import cell_runs, finished, write_tabular_card

REPO = Path(__file__).resolve().parent.parent


def _fresh_postgres_database() -> str:
    """A new, empty database on the test PostgreSQL server, as a bare ``postgresql://`` URL."""
    import uuid

    import sqlalchemy as sa

    base = os.environ["FUSEBENCH_TEST_POSTGRES_URL"]
    name = f"fb_fresh_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    url = sa.engine.make_url(base).set(drivername="postgresql", database=name)
    return url.render_as_string(hide_password=False)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not os.environ.get("FUSEBENCH_TEST_POSTGRES_URL"),
    reason="FUSEBENCH_TEST_POSTGRES_URL not set (.ci/run starts PostgreSQL and sets it)"))])
def test_two_first_ever_benches_on_fresh_stores_both_finish(kind, fusebench_home, monkeypatch):
    write_tabular_card(fusebench_home / "cards", "race")
    if kind == "postgresql":  # MLflow's tables and Optuna's in two new databases of the server
        monkeypatch.setenv("MLFLOW_TRACKING_URI", _fresh_postgres_database())
        monkeypatch.setenv("FUSEBENCH_OPTUNA_STORAGE", _fresh_postgres_database())
    for store in ("mlruns.db", "optuna.db"):
        assert not (fusebench_home / store).exists()  # fresh: the first bench creates both
    argv = [sys.executable, "-m", "benchmark.cli", "bench", "--profile", "smoke", "--datasets", "race",
            "--seeds", "0", "--dropout", "0", "--trials", "1", "--epochs", "1", "--device", "cpu", "--no-report"]
    benches = [subprocess.Popen(argv + ["--strategies", strategy], cwd=REPO, env=dict(os.environ), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for strategy in ("concat", "sum")]
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
    # One cell each, in the stores the two created together.
    from benchmark.stores.database import normalise_url

    runs = finished(cell_runs(normalise_url(os.environ["MLFLOW_TRACKING_URI"])))
    assert sorted(r.data.tags["strategy"] for r in runs) == ["concat", "sum"]
