"""An unreachable coordination database: bounded retry with backoff, then a clear error."""

from __future__ import annotations

import time

import pytest

from benchmark.cli import main
from benchmark.workqueue import StoreUnavailable, WorkQueue, retry


def test_retry_gives_up_after_budget_with_clear_error(tmp_path):
    url = f"sqlite:///{tmp_path}/no/such/folder/queue.db"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="unreachable for 2s, giving up"):
        WorkQueue(url, retry_budget_s=2.0)
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed <= 10.0, elapsed  # it waited and retried, but for a bounded time


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


def test_worker_exits_with_clear_error_when_database_unreachable(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FUSEBENCH_RETRY_S", "1")
    code = main(["worker", "--storage", f"sqlite:///{tmp_path}/missing/dir/optuna.db"])
    assert code == 2
    assert "unreachable" in capsys.readouterr().err
