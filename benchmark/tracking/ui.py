"""The MLflow UI for a tracking store: the address of the fusebench experiment's runs page,
serving the UI, and a check in a real browser (headless Chromium saves a screenshot of the
runs page, so a person can see it opens on the runs table, not the GenAI traces view)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

from benchmark.tracking.mlflow_runs import experiment_id

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
SERVER_START_S = 90.0  # `mlflow ui` answers in about 10 s here; allow for a slow first start
PAGE_BUDGET_MS = 20000  # virtual time Chromium gives the page's scripts before the screenshot


# MLflow 3.17's UI keeps a global GenAI / Model-training switch (in the browser's local storage,
# GenAI by default); the page's `workflowType` query parameter overrides it.
WORKFLOW_QUERY = "workflowType=machine_learning"
# A saved view of the runs table, as the UI's own "share" button stores one: the experiment tag
# `mlflow.sharedViewState.<key>` holds the view as JSON and the page's `viewStateShareKey`
# query parameter opens it (under a "shared view" banner). fusebench's view adds the main columns.
VIEW_KEY = "fusebench-cells"
VIEW_TAG = "mlflow.sharedViewState." + VIEW_KEY
VIEW_COLUMNS = [f"params.`{p}`" for p in ("dataset", "variant", "modality_dropout", "seed")] + [
    f"metrics.`{m}`" for m in ("test_accuracy", "test_macro_f1", "robustness", "tuning_gain", "train_samples_per_s",
                               "epochs_run")]


def runs_page_url(tracking_uri: str, host: str = "127.0.0.1", port: int = 5000, columns: bool = False) -> str:
    """http://HOST:PORT/#/experiments/<id>/runs?workflowType=machine_learning: the runs table of the
    fusebench experiment in the store, in the model-training view (the experiment is created, with
    its kind tag, when the store has none yet). ``columns``: open fusebench's saved view with the main
    params and metrics as columns (written to the experiment as a tag)."""
    from mlflow.tracking import MlflowClient

    eid = experiment_id(tracking_uri)
    url = f"http://{host}:{port}/#/experiments/{eid}/runs?{WORKFLOW_QUERY}"
    if not columns:
        return url
    MlflowClient(tracking_uri=tracking_uri).set_experiment_tag(eid, VIEW_TAG, json.dumps({"selectedColumns": VIEW_COLUMNS}))
    return f"{url}&viewStateShareKey={VIEW_KEY}"


def find_browser() -> str | None:
    """A headless-capable Chromium on PATH (Debian package `chromium`), or None."""
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def mlflow_ui_command(tracking_uri: str, host: str, port: int) -> list[str]:
    mlflow = Path(sys.executable).with_name("mlflow")
    program = [str(mlflow)] if mlflow.exists() else [sys.executable, "-m", "mlflow"]
    return [*program, "ui", "--backend-store-uri", tracking_uri, "--host", host, "--port", str(port)]


def start_server(tracking_uri: str, host: str, port: int, log=None) -> subprocess.Popen:
    """`mlflow ui` in a session of its own, so that :func:`stop_server` can stop it together with the
    uvicorn workers it starts."""
    return subprocess.Popen(mlflow_ui_command(tracking_uri, host, port), stdout=log,
                            stderr=subprocess.STDOUT if log else None, start_new_session=True)


def stop_server(server: subprocess.Popen, grace_s: float = 15.0) -> None:
    """SIGTERM to the server's process group (the server and its workers); after the server has
    exited, or ``grace_s``, SIGKILL to whatever of the group is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError):  # a stuck server, or a worker that outlived it
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def _stop_by_signal(signum, frame):
    raise KeyboardInterrupt


def serve(tracking_uri: str, host: str, port: int) -> int:
    """Run `mlflow ui` in the foreground until it exits, Ctrl-C, SIGTERM or SIGHUP; then stop it and
    its workers (nothing is left listening on the port). -> its exit status, 0 when stopped."""
    stops = (signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, _stop_by_signal) for sig in stops}
    server = start_server(tracking_uri, host, port)
    try:
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop_server(server)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def serving(tracking_uri: str, host: str = "127.0.0.1", port: int | None = None,
            log_file: Path | None = None) -> Iterator[int]:
    """Run `mlflow ui` on HOST and a free port (or ``port``) until the block ends; yields the port
    once the server answers /health."""
    port = port or free_port(host)
    log = open(log_file, "w") if log_file else subprocess.DEVNULL
    server = start_server(tracking_uri, host, port, log)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"`mlflow ui` exited with status {server.returncode} before answering"
                                   + (f"; see {log_file}" if log_file else ""))
            try:
                with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"`mlflow ui` did not answer on {host}:{port} within {SERVER_START_S:.0f}s")
            time.sleep(0.5)
        yield port
    finally:
        stop_server(server)
        if log_file:
            log.close()


def screenshot(url: str, out: Path, browser: str | None = None, size: tuple[int, int] = (1600, 1000)) -> Path:
    """Load ``url`` in headless Chromium and save a PNG screenshot to ``out``."""
    browser = browser or find_browser()
    if browser is None:
        raise FileNotFoundError("no Chromium on PATH for the UI check; install the Debian package: "
                                "apt-get install -y chromium")
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
               f"--window-size={size[0]},{size[1]}", f"--virtual-time-budget={PAGE_BUDGET_MS}",
               f"--screenshot={out}", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    if not out.exists():
        raise RuntimeError(f"Chromium wrote no screenshot (status {done.returncode}): {done.stderr.strip()[-500:]}")
    return out


def check_ui(tracking_uri: str, out: Path, host: str = "127.0.0.1") -> tuple[str, Path]:
    """Start `mlflow ui` on a free port, screenshot the runs page, stop the server. -> (url, png)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with serving(tracking_uri, host, log_file=out.with_suffix(".log")) as port:
        url = runs_page_url(tracking_uri, host, port)
        return url, screenshot(url, out)
