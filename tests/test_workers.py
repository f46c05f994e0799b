"""Several workers on one matrix: 3 worker processes share the Optuna storage and the
MLflow store; one is killed in the middle of a cell; the others take its work over. Every
cell must finish exactly once and no tuning trial may be missing or duplicated.

Runs against SQLite (Optuna RDB) and JournalStorage always, with runs going to a real MLflow
tracking server (`mlflow server` on 127.0.0.1) once, and against PostgreSQL when
FUSEBENCH_TEST_POSTGRES_URL is set (`.ci/run` starts a server on 127.0.0.1 and sets it)."""

from __future__ import annotations

import os
import signal
import uuid

import pytest

from benchmark.cli import main
from tests.helpers_runs import (assert_each_cell_once, assert_trial_budget, cell_runs, fusebench, mlflow_server,
                                wait_for)

# Its own deadlines add up to 20 min (300 s for the victim to start, 300 s for the survivors to
# claim, 600 s for them to finish), so the end-to-end limit (tests/conftest.py) is raised to let
# them fail first, with their messages.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
STRATEGIES = "concat,sum,late_weighted"
SEEDS = "0,1"


def lease_holders(storage: str) -> set[str]:
    """The '-<pid>-' part of every worker that holds or held a lease in the newest matrix's queue."""
    from benchmark.engine.workqueue import open_queue

    queue = open_queue(storage)
    rows = queue.leases(queue.matrix(None)["matrix_id"])
    queue.engine.dispose()
    return {f"-{row['worker'].split('-')[-2]}-" for row in rows if row["worker"]}


def storages():
    params = [pytest.param("sqlite", id="sqlite"), pytest.param("journal", id="journal"),
              pytest.param("sqlite+server", id="mlflow-tracking-server")]
    postgres = os.environ.get("FUSEBENCH_TEST_POSTGRES_URL")
    params.append(pytest.param("postgres", id="postgresql", marks=pytest.mark.skipif(
        not postgres, reason="FUSEBENCH_TEST_POSTGRES_URL not set (.ci/run starts PostgreSQL and sets it)")))
    return params


def _storage_url(kind: str, home) -> str:
    if kind.startswith("sqlite"):
        return f"sqlite:///{home / 'optuna-workers.db'}"
    if kind == "journal":
        return f"journal:{home / 'optuna-journal.log'}"
    import sqlalchemy as sa

    base = os.environ["FUSEBENCH_TEST_POSTGRES_URL"]
    name = f"fb_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return str(sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False))


@pytest.fixture
def tracking_uri(request, fusebench_home, monkeypatch):
    """The default SQLite tracking store, or a real MLflow tracking server for the server case."""
    if request.node.callspec.params["kind"].endswith("+server"):
        with mlflow_server(fusebench_home / "mlflow-server") as uri:
            monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
            yield uri
    else:
        yield os.environ["MLFLOW_TRACKING_URI"]


@pytest.mark.parametrize("kind", storages())
def test_three_workers_one_killed(kind, toy_card, fusebench_home, tracking_uri, monkeypatch, capsys):
    monkeypatch.setenv("FUSEBENCH_LEASE_S", "6")
    monkeypatch.setenv("FUSEBENCH_NO_LOCAL_RELEASE", "1")  # take work over by lease timeout, as across machines
    uri = tracking_uri
    storage = _storage_url(kind, fusebench_home)
    bench = ["bench", "--profile", "smoke", "--datasets", "toy", "--strategies", STRATEGIES, "--trials", "3",
             "--epochs", "3", "--seeds", SEEDS, "--dropout", "0.3", "--device", "cpu", "--storage", storage,
             "--stack"]  # the victim claims the seeds of a study together (stacking is off by default on CPU)
    assert main(bench + ["--workers", "0"]) == 0  # register the matrix and fill the feature cache
    capsys.readouterr()
    worker_args = ["worker", "--storage", storage, "--tracking-uri", uri, "--device", "cpu"]
    env = {"OMP_NUM_THREADS": "1"}
    # Worker 0 (the victim) pauses 60 s inside each cell, so the kill surely lands mid-cell. It
    # starts first and the two survivors join once it is inside a cell: started together, the
    # survivors could finish the whole toy matrix before a slow-starting victim claims a cell.
    victim = fusebench(*worker_args, env={**env, "FUSEBENCH_FAULT_CELL_DELAY_S": "60"})
    workers = [victim]
    try:
        def victim_cells():
            # the victim's running cells: the seeds of one study, claimed and trained together
            return frozenset(r.data.tags["fusebench.cell_hash"] for r in cell_runs(uri) if r.info.status == "RUNNING"
                             and f"-{victim.pid}-" in r.data.tags.get("worker", ""))

        def victim_mid_cell():
            # Alone on the matrix, the victim claims every seed of its first study; it opens their runs one
            # by one, so wait until all are open (then it sleeps inside the group) before reading the set.
            running = victim_cells()
            return running if len(running) == len(SEEDS.split(",")) else None

        interrupted = wait_for(victim_mid_cell, timeout=300, what="worker 0 to start its cells", interval=0.2)
        workers += [fusebench(*worker_args, env=env) for _ in range(2)]
        # All three work on the matrix at once: each survivor holds a lease before the victim dies.
        wait_for(lambda: all(lease_holders(storage) & {f"-{w.pid}-"} for w in workers[1:]), timeout=300,
                 what="both surviving workers to claim a unit", interval=0.2)
        assert victim_cells() == interrupted, "worker 0 must still be inside its cells when killed"
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        outputs = [w.communicate(timeout=600)[0] for w in workers[1:]]
        codes = [w.returncode for w in workers[1:]]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    assert codes == [0, 0], outputs
    assert_each_cell_once(uri, expected_cells=6)
    assert_trial_budget(storage, trials=3, studies=3)
    # The cells the victim was running were taken over and finished by a surviving worker.
    taken_over = [r for r in cell_runs(uri) if r.data.tags["fusebench.cell_hash"] in interrupted]
    assert len(taken_over) == len(interrupted) and all(f"-{victim.pid}-" not in r.data.tags["worker"]
                                                       for r in taken_over)
    # A report can be built from what the workers logged.
    assert main(["report"]) == 0
    assert "concat" in capsys.readouterr().out
