"""The Ray-cluster commands of docs/several-machines.md, run as written (issue 21, item 5; issue 23)
against the PostgreSQL that `.ci/run` starts (FUSEBENCH_TEST_POSTGRES_URL; skipped without it): the
exported store variables, an MLflow tracking server backed by PostgreSQL, a Ray head (`ray start
--head`), `bench --cluster auto`, `status` and `report`, each a subprocess of its own in a fresh
FUSEBENCH_HOME. Only the placeholders are replaced: user, host and port of the database (its
password, where it has one, goes in PGPASSWORD as the docs say), two fresh database names, the
server's port and bucket, the head's port, and `PROFILE` (a one-cell profile on a tiny tabular
dataset, so that it runs in about a minute). On one machine there is no second node:
`ray start --address` is left out, the head runs with `--block` in the test's foreground (stopped
by the test, not by `ray stop`, which would end every Ray process of the machine's user)."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.helpers_runs import REPO, free_port, wait_for, write_tabular_card

MARK = "<!-- ci: multi-machine -->"
DOCUMENT = REPO / "docs" / "several-machines.md"
POSTGRES = os.environ.get("FUSEBENCH_TEST_POSTGRES_URL")


def documented_block() -> list[str]:
    """The lines of the fenced block that follows MARK in docs/several-machines.md."""
    text = DOCUMENT.read_text(encoding="utf-8")
    assert text.count(MARK) == 1, f"{DOCUMENT.name} must hold {MARK} exactly once, before the multi-machine block"
    match = re.search(re.escape(MARK) + r"\s*```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert match, f"no fenced code block right after {MARK} in {DOCUMENT.name}"
    return match.group(1).splitlines()


def commands_and_variables(block: list[str]) -> tuple[list[str], dict[str, str]]:
    """The block's commands (comments and blank lines dropped) and its ``NAME=value`` and
    ``export NAME=value`` assignments."""
    commands, variables = [], {}
    for line in block:
        line = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        assignment = re.fullmatch(r"(?:export )?([A-Z_]+)=(\S*)", line)
        if assignment:
            variables[assignment[1]] = assignment[2]
        elif line:
            commands.append(line)
    return commands, variables


def test_the_documented_block_is_found_and_holds_the_five_steps():
    """Runs without PostgreSQL too: the block the CI test runs is there and has the commands it expects."""
    commands, variables = commands_and_variables(documented_block())
    assert list(variables) == ["PROFILE", "FUSEBENCH_OPTUNA_STORAGE", "MLFLOW_TRACKING_URI"]
    assert [" ".join(c.split()[:2]) for c in commands] == [
        "mlflow server", "ray start", "ray start", "fusebench bench", "fusebench status", "fusebench report", "ray stop"]
    assert "--cluster auto" in commands[3]
    # no password in a URL: libpq reads it from ~/.pgpass or PGPASSWORD
    assert variables["FUSEBENCH_OPTUNA_STORAGE"] == "postgresql://user@db-host/optuna"
    assert not [c for c in commands if re.search(r"://[^/@\s]*:[^/@\s]*@", c)], commands


def _fresh_database(base_url: str) -> str:
    import sqlalchemy as sa

    name = f"fb_readme_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return name


def placeholders(tmp_path: Path, port: int, ray_port: int) -> dict[str, str]:
    """Documented placeholder -> this test's value."""
    import sqlalchemy as sa

    url = sa.engine.make_url(POSTGRES)
    server = f"{url.host}:{url.port or 5432}"
    return {
        "user@db-host/optuna": f"{url.username}@{server}/{_fresh_database(POSTGRES)}",
        "user@db-host/mlflow": f"{url.username}@{server}/{_fresh_database(POSTGRES)}",
        "s3://bucket/mlflow": str(tmp_path / "artifacts"),
        "--port 5000": f"--port {port}",
        "mlflow-host:5000": f"127.0.0.1:{port}",
        "--port 6379": f"--port {ray_port}",
    }


def substituted(command: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        command = command.replace(placeholder, value)
    return command


TINY_PROFILE = """name: readme-machines
datasets: [tiny]
strategies: [concat]
dropout_rates: [0.0]
seeds: [0]
trials: 1
epochs: 1
batch_size: 16
"""


@pytest.mark.slow
@pytest.mark.skipif(not POSTGRES, reason="FUSEBENCH_TEST_POSTGRES_URL not set (.ci/run starts PostgreSQL and sets it)")
def test_the_documented_multi_machine_commands_run_as_written(tmp_path):
    import sqlalchemy as sa

    commands, variables = commands_and_variables(documented_block())
    port, ray_port = free_port(), free_port()
    values = placeholders(tmp_path, port, ray_port)
    text = "\n".join(commands + list(variables.values()))
    missing = [p for p in values if p not in text]
    assert not missing, f"documented placeholders this test replaces are gone: {missing}; update the test with them"
    cards = tmp_path / "cards"
    write_tabular_card(cards, "tiny")
    profile = tmp_path / "tiny-profile.yaml"
    profile.write_text(TINY_PROFILE)
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "FUSEBENCH_OPTUNA_STORAGE")}
    env.update({  # a fresh state folder; the commands name their stores themselves
        "FUSEBENCH_HOME": str(tmp_path / "home"), "FUSEBENCH_DATASETS": str(cards),
        "FUSEBENCH_REPORTS": str(tmp_path / "reports"), "HF_HUB_OFFLINE": "1", "PROFILE": str(profile),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # fusebench, mlflow, ray
        "RAY_USAGE_STATS_ENABLED": "0",
    })
    env.update({name: substituted(value, values) for name, value in variables.items() if name != "PROFILE"})
    password = sa.engine.make_url(POSTGRES).password
    if password:
        env["PGPASSWORD"] = password
    assert set(variables) <= set(env)
    logs = tmp_path / "logs"
    logs.mkdir()
    server_command, head_command, _, *steps = [substituted(c, values) for c in commands]
    assert server_command.startswith("mlflow server ") and head_command.startswith("ray start --head")
    assert steps.pop() == "ray stop"
    try:
        with _background(server_command, env, logs / "mlflow-server.log") as server, \
                _background(head_command + " --block", env, logs / "ray-head.log") as head:
            def healthy():
                assert server.poll() is None, f"mlflow server exited:\n{(logs / 'mlflow-server.log').read_text()[-3000:]}"
                with contextlib.suppress(OSError):
                    return urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200
                return False

            wait_for(healthy, timeout=180, what="the documented mlflow server")

            def head_up():
                text = (logs / "ray-head.log").read_text()
                assert head.poll() is None, f"ray start --head exited:\n{text[-3000:]}"
                return "Ray runtime started" in text

            wait_for(head_up, timeout=180, what="the documented Ray head", interval=2)
            outputs = []
            for step in steps:
                done = subprocess.run(["bash", "-c", step], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
                outputs.append(done.stdout)
                assert done.returncode == 0 and "Traceback" not in done.stderr, \
                    f"{step}\nexit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    finally:
        _forget_head(ray_port)
    bench, status, report = outputs
    assert "Ray cluster auto" in bench and "1 cells: 1 run now" in bench, bench
    assert "final cells        1/1 done" in status and "driver: none" in status, status
    matrix_reports = [p for p in (tmp_path / "reports").glob("*/report.md") if p.parent.name != "latest"]
    assert len(matrix_reports) == 1 and "concat" in matrix_reports[0].read_text(), report
    assert any((tmp_path / "artifacts").rglob("report.md")), "the report was not logged to the tracking server"


def _forget_head(ray_port: int) -> None:
    """Remove the address file `ray start --head` left (`ray stop` would, but it ends every Ray process of
    the user): a later bare ray.init() on this machine would try to join the stopped head."""
    current = Path("/tmp/ray/ray_current_cluster")
    with contextlib.suppress(OSError):
        if current.read_text().strip().endswith(f":{ray_port}"):
            current.unlink()


@contextlib.contextmanager
def _background(command: str, env: dict, log_path: Path):
    """``command`` running in its own process group (stopped afterwards), output to ``log_path``."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(shlex.split(command), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            yield process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
