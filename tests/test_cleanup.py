"""Clean-up when stopped (issue 21, item 9): `fusebench ui` stops the MLflow server it started,
and the server's own workers, on SIGTERM and SIGINT, leaving nothing listening on its port; Ctrl-C
during a cell closes the cell's MLflow run as KILLED, and a report calls it unfinished, not failed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.tracking.ui import free_port
from tests.helpers_runs import cell_runs, wait_for
from tests.test_card_paths import FAST, write_card

ROOT = Path(__file__).resolve().parents[1]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc's children lists)."""
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = {int(c) for c in (task / "children").read_text().split()}
            except OSError:
                continue
            todo.extend(children - found)
            found |= children
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# Stands in for `mlflow ui`, which starts uvicorn as a child process: a leader whose child listens.
FAKE_SERVER = """
import socket, subprocess, sys, time
port = int(sys.argv[1])
if sys.argv[2:] == ["worker"]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    while True:
        time.sleep(1)
subprocess.Popen([sys.executable, __file__, str(port), "worker"]).wait()
"""

# `fusebench ui` with the stand-in server and no MLflow store to ask for the runs-page address.
FAKE_UI = """
import sys
from benchmark.tracking import ui
ui.mlflow_ui_command = lambda uri, host, port: [sys.executable, {server!r}, str(port)]
ui.runs_page_url = lambda uri, host, port, columns=False: "http://stub"
from benchmark.cli import main
sys.exit(main(["ui", "--tracking-uri", {uri!r}, "--port", "{port}"]))
"""


def _start_ui(command: list[str], tmp_path) -> subprocess.Popen:
    env = {**os.environ, "FUSEBENCH_HOME": str(tmp_path / "home"), "FUSEBENCH_REPORTS": str(tmp_path / "reports")}
    # SIGINT at its default in the child: a suite launched as a background job of a shell without job
    # control inherits SIGINT ignored, and a Python started that way never turns Ctrl-C into
    # KeyboardInterrupt (the SIGINT cases would then wait for nothing).
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _stop_and_check(ui: subprocess.Popen, port: int, stop: signal.Signals, start_s: float) -> None:
    """Wait until the UI listens on ``port``, send ``stop`` to `fusebench ui` alone, check that its
    server (every process below it) is gone and nothing listens."""
    server: set[int] = set()

    def listening() -> bool:
        assert ui.poll() is None, ui.stderr.read().decode()  # exited before it listened: fail now, with its error
        return _listening(port)

    try:
        wait_for(listening, timeout=start_s, what=f"`fusebench ui` to listen on port {port}")
        server = _descendants(ui.pid)
        assert server
        ui.send_signal(stop)
        assert ui.wait(timeout=60) == 0
        # The server's processes may take a moment to exit after their leader.
        wait_for(lambda: not _listening(port) and not any(map(_alive, server)), timeout=10, interval=0.2,
                 what=f"nothing listening on port {port} and no server process {sorted(server)} left")
    finally:
        if ui.poll() is None:
            server |= _descendants(ui.pid)
            ui.kill()
            ui.wait()
        for pid in filter(_alive, server):  # what a failed run of this test leaves behind
            os.kill(pid, signal.SIGKILL)


STOPS = pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
PROC = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads child processes from /proc")


@PROC
@STOPS
def test_the_ui_stops_its_server_and_the_server_s_workers(stop, tmp_path):
    server = tmp_path / "server.py"
    server.write_text(FAKE_SERVER)
    port = free_port()
    driver = FAKE_UI.format(server=str(server), uri=f"sqlite:///{tmp_path / 'mlruns.db'}", port=port)
    _stop_and_check(_start_ui([sys.executable, "-c", driver], tmp_path), port, stop, start_s=120)


@pytest.mark.slow
@PROC
@STOPS
def test_the_ui_stops_the_mlflow_server_it_started(stop, tmp_path):
    port = free_port()
    command = [sys.executable, "-m", "benchmark.cli", "ui", "--tracking-uri", f"sqlite:///{tmp_path / 'mlruns.db'}",
               "--port", str(port)]
    _stop_and_check(_start_ui(command, tmp_path), port, stop, start_s=300)


def test_an_interrupted_cell_is_closed_killed_and_reported_unfinished(fusebench_home, monkeypatch, capsys):
    from benchmark.run import unit_runner as worker_module

    write_card(fusebench_home / "cards")
    real_run_cells, calls = worker_module.run_cells, []

    def interrupted_second(*args, **kwargs):  # Ctrl-C while the second cell trains
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_run_cells(*args, **kwargs)

    monkeypatch.setattr(worker_module, "run_cells", interrupted_second)
    strategies = FAST.index("--strategies") + 1
    argv = ["bench", "--datasets", "tabpath", *FAST[:strategies], "concat,prob_average", *FAST[strategies + 1:]]
    assert main([*argv, "--no-report"]) == 130
    runs = {r.data.tags["strategy"]: r for r in cell_runs(os.environ["MLFLOW_TRACKING_URI"])}
    assert [(s, r.info.status) for s, r in sorted(runs.items())] == [("concat", "FINISHED"), ("prob_average", "KILLED")]
    assert runs["prob_average"].data.tags["fusebench.status"] == "interrupted"

    capsys.readouterr()
    assert main(["report"]) == 0
    report = (fusebench_home / "reports" / "latest" / "report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| — | prob_average |"))
    assert "unfinished" in row and "failed" not in row, row
