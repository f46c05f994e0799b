"""Secrets never printed (issue 21, item 6): a password in the Optuna storage URL or the MLflow
tracking URI is masked in every line fusebench prints, and never on a worker process's command
line (`ps` shows it to every user of the machine)."""

from __future__ import annotations

import os
import socket

import pytest

from benchmark.cli import main

PASSWORD = "S3cretPW"


def _free_port() -> int:
    """A port on which nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_mask_secrets_hides_every_url_password_in_a_line():
    from benchmark.stores.database import mask_secrets

    line = (f"tracking https://bob:{PASSWORD}@mlflow.example/x, optuna postgresql+psycopg2://alice:{PASSWORD}@db:5432/"
            f"optuna, local sqlite:////tmp/optuna.db, http://host:5000/models@v1")
    masked = mask_secrets(line)
    assert PASSWORD not in masked
    assert "https://bob:***@mlflow.example/x" in masked and "postgresql+psycopg2://alice:***@db:5432/optuna" in masked
    assert "sqlite:////tmp/optuna.db" in masked and "http://host:5000/models@v1" in masked  # nothing else changed


def test_no_password_in_the_output_of_bench_and_status(toy_card, fusebench_home, monkeypatch, capsys, caplog):
    monkeypatch.setenv("FUSEBENCH_RETRY_S", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    port = _free_port()
    tracking = f"http://alice:{PASSWORD}@127.0.0.1:{port}"
    storage = f"postgresql+psycopg2://alice:{PASSWORD}@127.0.0.1:{port}/optuna"
    bench = ["bench", "--profile", "smoke", "--datasets", "toy", "--strategies", "concat", "--device", "cpu"]
    # An unreachable PostgreSQL storage: the first line, the retry warning and the error.
    assert main(bench + ["--storage", storage, "--tracking-uri", tracking]) == 2
    # A reachable storage and an unreachable tracking server: the tracking store's retry and error.
    assert main(bench + ["--tracking-uri", tracking]) == 2
    assert main(["status", "--storage", storage]) == 2
    captured = capsys.readouterr()
    printed = captured.out + captured.err + caplog.text
    assert "alice:***@127.0.0.1" in captured.out and "unreachable" in captured.err, printed
    assert PASSWORD not in printed, printed


def test_a_prepare_only_bench_prints_no_password(toy_card, fusebench_home, monkeypatch, capsys):
    from benchmark.run import coordinator
    from benchmark.stores import database

    monkeypatch.setattr(coordinator, "run_bench", lambda config, *a, **k: coordinator.BenchSummary("m-1", 1))
    monkeypatch.setattr(database, "connect_once", lambda url: None)  # db.example is not reached: no store here
    storage = f"postgresql+psycopg2://alice:{PASSWORD}@db.example/optuna"
    assert main(["bench", "--profile", "smoke", "--datasets", "toy", "--strategies", "concat", "--device", "cpu",
                 "--workers", "0", "--storage", storage, "--tracking-uri", f"https://bob:{PASSWORD}@mlflow.example"]) == 0
    out = capsys.readouterr().out
    assert PASSWORD not in out, out
    assert "optuna postgresql+psycopg2://alice:***@db.example/optuna" in out
    assert "matrix m-1 registered and its data prepared" in out and "--cluster ADDRESS" in out


