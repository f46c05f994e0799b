"""fusebench from Python (a notebook, a script): run a matrix, read its results as a pandas
DataFrame, build its report. The same machinery as the `fusebench` command (benchmark/run/
coordinator.py, benchmark/reporting/): the same matrix ids, stores, resumption and report.

    from benchmark import api

    matrix_id = api.run("smoke", datasets=["emoji"], strategies=["concat", "late_weighted"], seeds=[0, 1])
    df = api.results(matrix_id)          # one row per finished cell, decoded columns
    path = api.report(matrix_id)         # reports/<matrix id>/report.md

Bad arguments raise before anything is written, with the messages the CLI prints: ProfileError (a
ValueError) for an override, CardError / DataError / RegistryError for datasets and strategies."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pandas as pd

from benchmark.run.config import ProfileError

# api.run keywords that say where and how to run rather than what (not MatrixConfig fields).
RUN_OPTIONS = ("tracking_uri", "storage", "workers", "retry_failed", "report", "verbose", "log")
# What an override may not set: the profile's name and what registering a matrix records.
NOT_OVERRIDABLE = ("name", "card_files")


def _tracking(tracking_uri: str | None) -> str:
    """``tracking_uri`` or the default, normalised and checked (StoreURLError, a ValueError)."""
    from benchmark.stores.database import checked_tracking_uri

    return checked_tracking_uri(tracking_uri, "tracking_uri")


def matrix_config(profile: str = "default", **overrides: Any):
    """The MatrixConfig ``run`` would run: the profile (a name under benchmark/run/profiles/ or a YAML
    path) with ``overrides`` (profile fields, ``device`` and ``plugins``). The profile model checks them
    as it checks a profile file's fields and the CLI's flags (a bad value raises ProfileError naming the
    keyword); dataset card paths are relative to the current folder, as with ``--datasets``."""
    from benchmark.run.config import load_profile
    from benchmark.train.device import parse_device, resolve_device

    values = {k: v for k, v in overrides.items() if v is not None}
    for key in NOT_OVERRIDABLE:
        if key in values:
            raise ProfileError(f"api.run(): override '{key}': set by the profile and by registering the matrix, "
                               "not by an override")
    try:
        device = resolve_device(parse_device(str(values.pop("device", "auto"))))
    except ValueError as exc:
        raise ProfileError(f"api.run(): override 'device': {exc}") from None
    plugins = values.pop("plugins", None)
    if isinstance(values.get("datasets"), str):
        values["datasets"] = [values["datasets"]]
    config = load_profile(profile).overridden(
        values, lambda field: f"api.run(): override '{field}'" if field else "api.run() overrides",
        also_known=("device", "plugins", *RUN_OPTIONS))
    return config.with_overrides(device=device, plugins=None if plugins is None else tuple(plugins)).pinned()


def run(profile: str = "default", *, tracking_uri: str | None = None, storage: str | None = None, workers: int = 1,
        retry_failed: bool = False, report: bool = True, verbose: bool = False,
        log: Callable[[str], None] = print, **overrides: Any) -> str:
    """Run (or resume) a matrix like `fusebench bench --profile PROFILE ...` and return its matrix id.

    ``overrides`` are MatrixConfig fields, e.g. ``datasets=["emoji"], strategies=["concat"], seeds=[0],
    dropout_rates=[0.3], trials=1, epochs=12, patience=2, device="cpu"``. ``tracking_uri`` (MLflow) and
    ``storage`` (Optuna) default as for the CLI; ``workers`` processes (0: register and prepare only).
    With ``report`` (default) the report is built and logged to the matrix's parent run, as `bench` does."""
    from benchmark.quiet import configure
    from benchmark.run.coordinator import finish_bench, run_bench
    from benchmark.run.plan import Plan
    from benchmark.stores.database import checked_storage_url
    from benchmark.stores.retry import reached

    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise ProfileError(f"api.run(): workers: expected an integer >= 0, got {workers!r}")
    configure(verbose=verbose)
    plan = Plan.build(matrix_config(profile, **overrides))  # checked against its cards before a store is opened
    tracking_uri = _tracking(tracking_uri)
    storage = checked_storage_url(storage, "storage")
    reached(tracking_uri, "tracking_uri")  # a missing server database: one line at once, not MLflow's retries
    reached(storage, "storage")
    summary = run_bench(plan, tracking_uri, storage, workers=workers, log=log, retry_failed=retry_failed)
    if workers > 0:
        # the report's full text is for the terminal; here only the one-line messages are shown
        finish_bench(summary, tracking_uri, plan.config.device, report=report,
                     log=lambda text: None if "\n" in text else log(text))
    return summary.matrix_id


def results(matrix_id: str | None = None, tracking_uri: str | None = None) -> pd.DataFrame:
    """One row per finished cell of the matrix (the newest when ``matrix_id`` is None), with decoded
    columns (benchmark/reporting/table.py): dataset, strategy, variant, dropout, seed, task,
    ranking_metric, score, the task's metrics, robustness, ``subset:image+text``, ``missing:30``, costs; for
    classifying tasks the calibration ``ece``, ``nll``, ``brier``, ``ece_missing:30`` and ``ece_missing[image]:30``
    (likewise nll and brier; benchmark/train/calibration.py); the modality reliance ``reliance[image]``,
    ``reliance_share[image]`` and ``reliance_equity`` (benchmark/train/reliance.py)."""
    from benchmark.reporting.fetch import fetch_matrix
    from benchmark.reporting.table import cell_table

    return cell_table(fetch_matrix(_tracking(tracking_uri), matrix_id))


def report(matrix_id: str | None = None, tracking_uri: str | None = None, log_to_mlflow: bool = True) -> Path:
    """Build the comparison report of the matrix (the newest when None) like `fusebench report`, log it
    as artifacts of its parent run (unless ``log_to_mlflow`` is false), and return report.md's path."""
    from benchmark.reporting import build_report
    from benchmark.tracking.mlflow_runs import MatrixTracker

    tracking_uri = _tracking(tracking_uri)
    folder, _ = build_report(tracking_uri, matrix_id)
    if log_to_mlflow:
        MatrixTracker(tracking_uri, folder.name, {}, "", create=False).log_artifacts(folder)
    return folder / "report.md"
