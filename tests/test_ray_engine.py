"""The Ray executor (benchmark/engine/ray_executor.py, benchmark/run/ray_bench.py): the Plan's units as
Ray tasks whose order is Ray dependencies, a `bench --workers 2` that runs every cell exactly once and
every study exactly its trial budget, a re-run that does no work, and a simulated cluster that loses a
node in the middle of a cell. The fast tests build tasks without starting Ray."""

from __future__ import annotations

import os
import re
import threading

import pytest

from tests.helpers_runs import (assert_each_cell_once, assert_trial_budget, cell_runs, wait_for,
                                write_tabular_card)

BENCH = ["bench", "--datasets", "tab", "--strategies", "concat,sum", "--seeds", "0,1", "--dropout", "0",
         "--trials", "2", "--epochs", "2", "--device", "cpu", "--no-report"]


def _plan(home, stack: bool = False, trials: int = 2):
    from benchmark.run.config import MatrixConfig
    from benchmark.run.plan import Plan

    write_tabular_card(home / "cards", "tab")
    return Plan.build(MatrixConfig(name="ray", datasets=("tab",), strategies=("concat", "sum"), dropout_rates=(0.0,),
                                   seeds=(0, 1), trials=trials, epochs=2, batch_size=16, stack_seeds=stack))


@pytest.mark.parametrize("stack", [False, True], ids=["one-by-one", "stacked"])
def test_tasks_chain_the_trial_slots_and_put_cells_after_all_of_them(fusebench_home, stack):
    from benchmark.run.ray_bench import plan_tasks

    plan = _plan(fusebench_home, stack)
    tasks = plan_tasks(plan, done=set())
    keys = [t.key for t in tasks]
    assert sorted(u for t in tasks for u in t.units) == sorted(u.id for u in plan.units)  # every unit, once
    for study in plan.studies:
        first, second = study.trial_units
        by_key = {t.key: t for t in tasks}
        assert by_key[first].after == () and by_key[second].after == (first,)
        cell_tasks = [t for t in tasks if plan.unit(t.units[0]).study_key == study.key and t.key not in (first, second)]
        assert [len(t.units) for t in cell_tasks] == ([2] if stack else [1, 1])  # seeds 0 and 1 stacked, or not
        assert all(t.after == (first, second) and keys.index(t.key) > keys.index(second) for t in cell_tasks)


def test_done_units_are_not_submitted_and_nothing_waits_for_them(fusebench_home):
    from benchmark.run.ray_bench import plan_tasks

    plan = _plan(fusebench_home)
    study = plan.studies[0]
    done = {study.trial_units[0]} | {u.id for u in plan.cell_units if u.study_key != study.key}
    tasks = plan_tasks(plan, done)
    assert not {u for t in tasks for u in t.units} & done
    by_key = {t.key: t for t in tasks}
    assert by_key[study.trial_units[1]].after == ()  # its earlier slot is done: nothing to wait for
    assert all(t.after == (study.trial_units[1],) for t in tasks if t.units[0].startswith("cell:"))


def test_a_task_may_only_wait_for_an_earlier_task():
    from benchmark.engine.ray_executor import Resources, Task, run_tasks

    import ray

    with pytest.raises(ValueError, match="waits for"):
        run_tasks([Task("b", ("b",), ("a",)), Task("a", ("a",))], lambda units: None, Resources())
    with pytest.raises(RuntimeError, match="ray_session"):  # no implicit Ray start with default settings
        run_tasks([Task("a", ("a",))], lambda units: None, Resources())
    assert not ray.is_initialized()


def test_unit_resources_default_from_the_device_and_flags_are_checked(capsys):
    from benchmark.cli import main
    from benchmark.run.config import MatrixConfig
    from benchmark.run.ray_bench import default_resources

    assert default_resources(MatrixConfig(name="x", device="cpu")).gpus == 0.0
    assert default_resources(MatrixConfig(name="x", device="cuda")).gpus == 0.25  # small heads: four per GPU
    assert default_resources(MatrixConfig(name="x", device="cuda", stack_seeds=True)).gpus == 0.5
    assert default_resources(MatrixConfig(name="x", device="cuda", finetune=("frozen", "last_block"))).gpus == 1.0
    assert default_resources(MatrixConfig(name="x", device="cuda"), cpus=2, gpus=0.25).describe() == "2 CPU, 0.25 GPU per unit"
    for flag, value in (("--gpus-per-unit", "-0.5"), ("--cpus-per-unit", "0"), ("--cpus-per-unit", "many")):
        with pytest.raises(SystemExit):
            main(["bench", flag, value])
        assert flag in capsys.readouterr().err


def _no_running_runs(uri: str) -> None:
    running = [r.info.run_name for r in cell_runs(uri) if r.info.status == "RUNNING"]
    assert not running, running


@pytest.mark.slow
def test_two_workers_on_ray_run_each_unit_once_and_a_rerun_does_no_work(fusebench_home, capfd):
    from benchmark.cli import main

    write_tabular_card(fusebench_home / "cards", "tab")
    uri, storage = os.environ["MLFLOW_TRACKING_URI"], os.environ["FUSEBENCH_OPTUNA_STORAGE"]
    assert main(BENCH + ["--workers", "2"]) == 0
    out = capfd.readouterr()
    assert "local Ray, 2 CPUs, 1 CPU per unit" in out.out.splitlines()[0]
    assert "4 cells: 4 run now, 0 already done, 0 failed" in out.out, out.out
    counts = [int(m.group(1)) for m in re.finditer(r"^\[(\d+)/4\] ", out.err, re.M)]
    assert counts == [1, 2, 3, 4], out.err  # one matrix-wide counter, on the driver
    assert storage not in out.out + out.err or "sqlite" in storage  # (a password would be masked; none here)
    assert_each_cell_once(uri, 4)
    assert_trial_budget(storage, trials=2, studies=2)
    _no_running_runs(uri)
    runs = {r.info.run_id for r in cell_runs(uri)}
    from benchmark.run.status import matrix_status

    status = matrix_status(storage)  # read from the stores alone
    assert (status.trials_done, status.cells_done, status.finished) == (4, 4, True)

    assert main(BENCH + ["--workers", "2"]) == 0
    out = capfd.readouterr().out
    assert "4 cells: 0 run now, 4 already done" in out and "ray_start" not in out, out  # Ray not even started
    assert {r.info.run_id for r in cell_runs(uri)} == runs
    assert_trial_budget(storage, trials=2, studies=2)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_cluster_that_loses_a_node_mid_cell_still_runs_each_cell_once(fusebench_home, monkeypatch):
    """Three simulated nodes (a head with no CPU for units, two of one CPU each); one worker node is
    removed while cells train. Ray runs its tasks again on the other node; the retried cell deletes
    the run its dead attempt left RUNNING, and a trial it left RUNNING is failed as stale."""
    from ray.cluster_utils import Cluster

    from benchmark.engine.ray_executor import Resources
    from benchmark.run.coordinator import run_bench
    from benchmark.tracking.mlflow_runs import MatrixTracker

    plan = _plan(fusebench_home, trials=1)
    uri, storage = os.environ["MLFLOW_TRACKING_URI"], os.environ["FUSEBENCH_OPTUNA_STORAGE"]
    monkeypatch.setenv("FUSEBENCH_FAULT_CELL_DELAY_S", "15")  # widens the mid-cell window (read by the nodes' workers)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    outcome: dict = {}
    try:
        nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()

        def bench():
            try:
                outcome["summary"] = run_bench(plan, uri, storage, workers=0, cluster=cluster.address,
                                               resources=Resources(cpus=1))
            except BaseException as exc:  # noqa: BLE001 - reported by the test thread
                outcome["error"] = exc

        thread = threading.Thread(target=bench)
        thread.start()
        running = wait_for(lambda: [r for r in cell_runs(uri) if r.info.status == "RUNNING"], timeout=600,
                           what="a cell run to start on the cluster", interval=0.5)[0]
        cluster.remove_node(_node_of(nodes, running.data.tags["worker"]))  # the node training that cell
        thread.join(timeout=900)
        assert not thread.is_alive(), "the bench did not finish after a node was removed"
        assert "error" not in outcome, outcome.get("error")
    finally:
        cluster.shutdown()
    assert_each_cell_once(uri, 4)
    assert_trial_budget(storage, trials=1, studies=2)
    _no_running_runs(uri)
    assert not MatrixTracker(uri, plan.matrix_id, {}, "cpu", create=False).failed_cells()
    # the killed attempt's run was deleted when Ray ran the cell again elsewhere
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    deleted = client.search_runs([client.get_experiment_by_name("fusebench").experiment_id],
                                 f"tags.`fusebench.cell_hash` = '{running.data.tags['fusebench.cell_hash']}'",
                                 run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [running.info.run_id]


def _node_of(nodes, worker_tag: str):
    """The simulated node whose raylet started the Ray worker process named in a cell run's ``worker``
    tag (ray-<host>-<pid>)."""
    pid = int(worker_tag.rsplit("-", 1)[1])
    with open(f"/proc/{pid}/stat") as handle:
        parent = int(handle.read().rsplit(")", 1)[1].split()[1])
    return next(node for node in nodes if node.all_processes["raylet"][0].process.pid == parent)


def test_store_urls_are_never_task_arguments(fusebench_home, monkeypatch):
    """What a task carries (the pickled PlanUnits and its unit ids) holds no store URL: Ray's dashboard
    and state API show task arguments. The URLs reach the workers through their environment."""
    import pickle
    from dataclasses import asdict

    from benchmark.run.ray_bench import PlanUnits, default_resources, plan_tasks

    secret = "s3cr3t-pw"
    monkeypatch.setenv("FUSEBENCH_OPTUNA_STORAGE", f"postgresql://alice:{secret}@db.example/optuna")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"https://bob:{secret}@mlflow.example")
    plan = _plan(fusebench_home)
    shipped = pickle.dumps((PlanUnits(asdict(plan.config), plan.matrix_id, default_resources(plan.config)),
                            plan_tasks(plan, set())))
    assert secret.encode() not in shipped and b"alice" not in shipped


def _session_processes(sid: int) -> dict[int, str]:
    """pid -> name of the live processes of session ``sid`` (a driver started with start_new_session:
    its Ray instance; Ray's task workers are in that session too, each in a process group of its own)."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    head, _, rest = handle.read().rpartition(")")
                fields = rest.split()
                if int(fields[3]) == sid and fields[0] != "Z":
                    found[int(entry)] = head.split("(", 1)[1]
            except (OSError, ValueError, IndexError):
                continue
    return found


# Ray's per-node agents outlive a SIGKILLed driver for a while; they hold no unit and write to no store.
RAY_AGENTS = ("ray::DashboardA", "ray::RuntimeEnv")
KILL_BENCH = ["bench", "--datasets", "tab", "--strategies", "concat,sum", "--seeds", "0", "--dropout", "0",
              "--trials", "1", "--epochs", "2", "--device", "cpu", "--no-report", "--workers", "2"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_driver_killed_mid_run_is_resumed_by_the_same_bench_without_redoing_work(fusebench_home):
    """SIGKILL the driver of `bench --workers 2` while a cell trains: its local Ray instance and task
    workers go with it; `status`, from the stores alone, says the driver is gone and the cell
    interrupted; the same bench run again once the heartbeat is stale takes the matrix over and resumes:
    every cell exactly once (the dead attempt's open run deleted), every study exactly its trial budget,
    no run left RUNNING. About 90 s on two cores (two Ray start-ups)."""
    import signal
    import subprocess
    import sys

    from benchmark.run.status import format_status, matrix_status
    from benchmark.stores.driver_lock import driver_of
    from tests.helpers_runs import REPO, OutputWatch

    write_tabular_card(fusebench_home / "cards", "tab")
    uri, storage = os.environ["MLFLOW_TRACKING_URI"], os.environ["FUSEBENCH_OPTUNA_STORAGE"]
    env = {**os.environ, "FUSEBENCH_DRIVER_STALE_S": "3", "RAY_USAGE_STATS_ENABLED": "0"}
    command = [sys.executable, "-m", "benchmark.cli", *KILL_BENCH]
    driver = subprocess.Popen(command, cwd=REPO, env={**env, "FUSEBENCH_FAULT_CELL_DELAY_S": "8"},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    watch = OutputWatch(driver)
    try:
        running = wait_for(lambda: [r for r in cell_runs(uri) if r.info.status == "RUNNING"] or driver.poll() is not None,
                           timeout=150, what="a cell run to start", interval=0.3)
        assert driver.poll() is None, watch.text()
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
        wait_for(lambda: not [name for name in _session_processes(driver.pid).values() if name not in RAY_AGENTS],
                 timeout=60, what="the dead driver's Ray processes and task workers to end")
    finally:
        for pid in _session_processes(driver.pid):  # whatever the dead driver started and is still there
            os.kill(pid, signal.SIGKILL)
    matrix_id = matrix_status(storage).matrix_id
    wait_for(lambda: driver_of(storage, matrix_id).age_s() > 3, timeout=30, what="the heartbeat to go stale")
    text = format_status(matrix_status(storage))
    assert "is gone" in text and "interrupted" in text and running[0].info.run_name in text, text

    rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=200)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert f"taking over matrix {matrix_id}" in rerun.stdout + rerun.stderr
    assert_each_cell_once(uri, 2)
    assert_trial_budget(storage, trials=1, studies=2)
    _no_running_runs(uri)
    status = matrix_status(storage)
    assert status.finished and status.driver is None and status.failed == []
