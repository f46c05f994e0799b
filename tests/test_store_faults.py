"""An unreachable coordination database: bounded retry with backoff, then a clear error."""

from __future__ import annotations

import os
import time

import pytest

from benchmark.cli import main
from benchmark.stores.retry import StoreUnavailable, retry
from benchmark.stores.matrix_registry import METADATA, StoreDatabase


def _closed_port() -> int:
    """A port on which nothing listens."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_retry_gives_up_after_budget_with_clear_error():
    url = f"postgresql+psycopg2://user:pw@127.0.0.1:{_closed_port()}/optuna"  # connection refused: an outage
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="unreachable for 2s, giving up"):
        StoreDatabase(url, METADATA, retry_budget_s=2.0)
    elapsed = time.monotonic() - started
    assert 2.0 <= elapsed <= 10.0, elapsed  # it retried until the budget ran out, and no longer than that


def test_retry_succeeds_when_store_comes_back():
    from sqlalchemy.exc import OperationalError

    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        return "ok"

    assert retry(flaky, "flaky store", budget_s=20, first_wait=0.05) == "ok"
    assert len(calls) == 3


def test_status_exits_with_clear_error_when_database_unreachable(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FUSEBENCH_RETRY_S", "1")
    code = main(["status", "--storage", f"postgresql+psycopg2://user:pw@127.0.0.1:{_closed_port()}/optuna"])
    assert code == 2
    assert "unreachable" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["bench", "status"])
def test_a_bare_postgresql_url_uses_psycopg2(command, toy_card, fusebench_home, monkeypatch, capsys):
    """Issue 21, item 5: `postgresql://` as docs/several-machines.md writes it reaches the retry path (an
    unreachable server here), not ModuleNotFoundError: No module named 'psycopg'."""
    monkeypatch.setenv("FUSEBENCH_RETRY_S", "1")
    argv = [command, "--storage", f"postgresql://user:pw@127.0.0.1:{_closed_port()}/optuna"]
    if command == "bench":
        argv += ["--profile", "smoke", "--datasets", "toy", "--strategies", "concat", "--device", "cpu"]
    assert main(argv) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "postgresql+psycopg2://user:***@127.0.0.1" in line and "unreachable for 1s" in line, line


def test_normalise_url():
    from benchmark.stores.database import normalise_url

    assert normalise_url("postgresql://u:p@h/db") == "postgresql+psycopg2://u:p@h/db"
    assert normalise_url("postgres://h/db") == "postgresql+psycopg2://h/db"
    for same in ("postgresql+psycopg2://h/db", "sqlite:///x.db", "journal:/x.log", "http://h:5000"):
        assert normalise_url(same) == same


BAD_STORES = [
    (["status", "--storage", "bogus://x"], "--storage", "not a database URL"),
    (["status", "--storage", "optuna.db"], "--storage", "not a database URL"),
    (["bench", "--storage", "bogus://x"], "--storage", "not a database URL"),
    (["status", "--storage", "postgresql+psycopg://h/db"], "--storage", "driver is not installed"),
    (["bench", "--tracking-uri", "bogus://x"], "--tracking-uri", "unknown tracking URI scheme"),
    (["report", "--tracking-uri", "bogus://x"], "--tracking-uri", "unknown tracking URI scheme"),
    (["status", "--storage", "sqlite:///{file}/optuna.db"], "--storage", "does not exist"),
    (["status", "--storage", "journal:{file}/optuna.log"], "--storage", "does not exist"),
    (["bench", "--tracking-uri", "sqlite:///{file}/mlruns.db"], "--tracking-uri", "does not exist"),
    # /proc: os.access says "writable" to root, yet no file can be created there; MLflow retried
    # opening such a database for 100 s before the folder was probed for real.
    (["bench", "--tracking-uri", "sqlite:////proc/mlruns.db"], "--tracking-uri", "folder /proc is not writable"),
    (["report", "--tracking-uri", "sqlite:////proc/mlruns.db"], "--tracking-uri", "folder /proc is not writable"),
    (["bench", "--storage", "sqlite:////proc/optuna.db"], "--storage", "folder /proc is not writable"),
    (["status", "--storage", "journal:/proc/optuna.log"], "--storage", "folder /proc is not writable"),
    # MLflow 3 raises a traceback on first use of a folder store unless MLFLOW_ALLOW_FILE_STORE is set.
    (["report", "--tracking-uri", "{home}/mlruns"], "--tracking-uri", "no longer writes to folder stores"),
    (["bench", "--dry-run", "--storage", "bogus://x"], "--storage", "not a database URL"),
    (["bench", "--dry-run", "--tracking-uri", "bogus://x"], "--tracking-uri", "unknown tracking URI scheme"),
]


@pytest.mark.parametrize("argv, flag, expected", BAD_STORES, ids=[" ".join(a) for a, _, _ in BAD_STORES])
def test_a_store_that_can_never_work_is_one_line_at_once(argv, flag, expected, toy_card, fusebench_home, monkeypatch,
                                                         capsys):
    """Issue 21, item 5: unknown schemes and unwritable paths (a file where the folder should be) end
    in one line naming the flag, exit 2, at once: not retried as an outage, nothing written."""
    monkeypatch.setenv("FUSEBENCH_RETRY_S", "60")
    a_file = fusebench_home / "a_file"
    a_file.write_text("not a folder")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    argv = [a.format(file=a_file, home=fusebench_home) for a in argv]
    if argv[0] == "bench":
        argv += ["--profile", "smoke", "--datasets", "toy", "--strategies", "concat", "--device", "cpu"]
    started = time.monotonic()
    assert main(argv) == 2
    assert time.monotonic() - started < 30
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and flag in lines[0] and expected in lines[0], lines
    assert not (fusebench_home / "mlruns.db").exists() and not (fusebench_home / "optuna.db").exists()


def _read_only(path) -> bool:
    """Make ``path`` read-only for this user: chmod 444, and for root (whom the mode does not stop)
    the immutable attribute where the file system has it. False when neither works here."""
    import subprocess

    path.chmod(0o444)
    if os.access(path, os.W_OK):
        subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    return not os.access(path, os.W_OK)


@pytest.mark.parametrize("flag, name", [("--tracking-uri", "mlruns.db"), ("--storage", "optuna.db")])
def test_a_read_only_database_file_is_one_line_at_once(flag, name, toy_card, fusebench_home, monkeypatch, capsys):
    """Issue 21, item 10: a read-only MLflow database gave 120 s of retries and 24 MLflow tracebacks
    before the error; a read-only Optuna database waited 120 s. Now: one line naming the flag, exit 2."""
    import subprocess

    monkeypatch.setenv("FUSEBENCH_RETRY_S", "60")
    database = fusebench_home / "read-only" / name
    database.parent.mkdir()
    database.write_bytes(b"")
    if not _read_only(database):
        pytest.skip("no way to make a file read-only for this user here (root without chattr)")
    try:
        argv = ["bench", "--profile", "smoke", "--datasets", "toy", "--strategies", "concat", "--device", "cpu",
                flag, f"sqlite:///{database}"]
        started = time.monotonic()
        assert main(argv) == 2
        assert time.monotonic() - started < 30
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1 and flag in lines[0] and "not writable" in lines[0], lines
        assert database.stat().st_size == 0
    finally:
        subprocess.run(["chattr", "-i", str(database)], capture_output=True, check=False)
        database.chmod(0o644)


def test_a_database_file_that_cannot_be_written_is_not_retried():
    from sqlalchemy.exc import OperationalError

    from benchmark.stores.database import StoreURLError

    calls = []

    def read_only():
        calls.append(1)
        raise OperationalError("INSERT", {}, Exception("attempt to write a readonly database"))

    with pytest.raises(StoreURLError, match="readonly database.*not retried"):
        retry(read_only, "write sqlite:////data/optuna.db", budget_s=60)
    assert len(calls) == 1


@pytest.mark.parametrize("text", ['connection to server at "h" failed: FATAL:  database "optuna" does not exist',
                                  'connection to server at "h" failed: FATAL:  role "alice" does not exist',
                                  'FATAL:  password authentication failed for user "alice"'])
def test_a_missing_database_or_refused_user_is_not_retried(text):
    """No wait creates a database or a user: one line at once, not the retry budget of an outage."""
    from sqlalchemy.exc import OperationalError

    from benchmark.stores.database import StoreURLError

    calls = []

    def refused():
        calls.append(1)
        raise OperationalError("connect", {}, Exception(text))

    with pytest.raises(StoreURLError, match="not retried") as info:
        retry(refused, "--storage: postgresql+psycopg2://alice:pw@h/optuna", budget_s=60)
    assert len(calls) == 1 and "\n" not in str(info.value) and "pw@" not in str(info.value)


POSTGRES = os.environ.get("FUSEBENCH_TEST_POSTGRES_URL")


@pytest.mark.skipif(not POSTGRES, reason="FUSEBENCH_TEST_POSTGRES_URL not set (.ci/run starts PostgreSQL and sets it)")
@pytest.mark.parametrize("argv, flag", [(["status", "--storage"], "--storage"),
                                        (["report", "--tracking-uri"], "--tracking-uri"),
                                        (["ui", "--tracking-uri"], "--tracking-uri")])
def test_a_postgresql_database_that_does_not_exist_is_one_line_at_once(argv, flag, fusebench_home, monkeypatch, capsys):
    """Was: the retry budget of an outage for the storage, and for a tracking URI MLflow's own 100 s
    of retries ending in a traceback."""
    import sqlalchemy as sa

    monkeypatch.setenv("FUSEBENCH_RETRY_S", "60")
    missing = sa.engine.make_url(POSTGRES).set(drivername="postgresql", database="fusebench_no_such_db")
    started = time.monotonic()
    assert main([*argv, missing.render_as_string(hide_password=False)]) == 2
    assert time.monotonic() - started < 30
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and flag in lines[0] and 'database "fusebench_no_such_db" does not exist' in lines[0], lines


def test_mlflow_connection_errors_count_as_store_outages():
    """The MLflow REST client re-raises a refused connection as a plain MlflowException."""
    import requests
    from mlflow.exceptions import MlflowException

    from benchmark.stores.retry import is_store_outage

    def wrapped(inner):
        try:
            try:
                raise inner
            except Exception as e:  # noqa: BLE001 - mirror mlflow.utils.rest_utils.http_request
                raise MlflowException(f"API request failed with exception {e}")
        except MlflowException as outer:
            return outer

    assert is_store_outage(wrapped(requests.exceptions.ConnectionError("refused")))
    assert is_store_outage(wrapped(requests.exceptions.RetryError("too many 503 error responses")))
    assert not is_store_outage(wrapped(ValueError("bad parameter")))
    assert not is_store_outage(MlflowException("RESOURCE_DOES_NOT_EXIST"))


@pytest.mark.slow
def test_bench_rides_out_a_tracking_server_outage(toy_card, fusebench_home, monkeypatch):
    """Stop the MLflow tracking server in the middle of a matrix and start it again on the same
    port: the bench waits, then finishes every cell exactly once."""
    from tests.helpers_runs import OutputWatch, assert_each_cell_once, cell_runs, finished, free_port, fusebench, \
        mlflow_server, wait_for

    storage = os.environ["FUSEBENCH_OPTUNA_STORAGE"]
    port, folder = free_port(), fusebench_home / "mlflow-server"
    with mlflow_server(folder, port) as uri:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        # Each cell is held 2 s after its run is opened, so the outage lands mid-matrix.
        bench = fusebench("bench", "--profile", "smoke", "--datasets", "toy", "--strategies", "concat,sum,late_weighted",
                           "--trials", "1", "--epochs", "2", "--seeds", "0,1", "--dropout", "0.3", "--device", "cpu",
                           "--storage", storage, "--tracking-uri", uri, "--no-report",
                           env={"FUSEBENCH_FAULT_CELL_DELAY_S": "2", "FUSEBENCH_RETRY_S": "240"})
        watch = OutputWatch(bench)
        try:
            wait_for(lambda: len(finished(cell_runs(uri))) >= 2, timeout=300, what="two finished cells")
        except BaseException:
            bench.kill()
            raise
    try:  # the server is down: wait until the bench has met the outage (it says so) before restarting it
        watch.wait_for_text("store unreachable", timeout=120)
    except BaseException:
        bench.kill()
        raise
    with mlflow_server(folder, port):
        try:
            output = watch.finish(timeout=600)
        finally:
            if bench.poll() is None:
                bench.kill()
        assert bench.returncode == 0, output
        assert "store unreachable" in output and "reachable again" in output, output
        assert_each_cell_once(uri, expected_cells=6)
