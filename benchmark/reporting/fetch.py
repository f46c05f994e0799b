"""Read one matrix from the MLflow tracking store (local or remote) into pandas tables.
Only MLflow's client is used, so a report can be rebuilt where torch is not installed.

This is the one reader of the results schema (vocabulary.RESULTS_SCHEMA): every run is brought up
to the current version here (``upgrade_run``, one step per version in UPGRADES), so the rest of
reporting sees one shape and never asks which fusebench wrote a run. What the current shape
guarantees for each finished run (a row of ``MatrixRuns.ok``):

- dataset, variant, strategy, family, dropout (the label), seed, device, run_id; fold with k-fold;
- task (a run that logged none is multiclass), stop_reason (None where the run logged no training
  record), ranking_metric (None where the run named none: the task's default ranks, and the report
  says the ranking was not declared);
- every metric under its current name: the task's reference predictor as "reference_<metric>",
  the defaults' retrain as "default_test_<metric>" (accuracy at least, for multiclass); a metric a
  run did not measure is absent (NaN in the table).

and for each failed or unfinished run (a row of ``MatrixRuns.problems``): the same identity (from
the run's tags, never its name), status ("failed" / "unfinished"), error_type and error (the first
line of the message; "" when none was recorded)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from benchmark.vocabulary import (CURVE_LR, CURVE_TRAIN_LOSS, CURVE_VAL_METRIC, DATA_ROWS_PREFIX, DEFAULT_TASK,
                                    ENERGY_SOURCE, EXPERIMENT, FOLD, MAJORITY_ACCURACY, MAJORITY_MACRO_F1,
                                    RANKING_METRIC, RESULTS_SCHEMA, STOP_REASON, TAG_ERROR, TAG_ERROR_LINE,
                                    TAG_ERROR_TYPE, TAG_KIND, TAG_MATRIX, TAG_STATUS, TASK, dropout_label,
                                    reference_metric, schema_version)

ID_COLUMNS = ["dataset", "variant", "strategy", "family", "dropout", "seed"]
# Step metrics (learning curves): run.data.metrics holds only their last value, which no table shows.
CURVE_METRICS = (CURVE_TRAIN_LOSS, CURVE_VAL_METRIC, CURVE_LR)


class NewerSchema(LookupError):
    """A run was written in a results-schema version newer than this fusebench reads."""


# ------------------------------------------------------------------ the schema versions
def _upgrade_1_to_2(run: dict) -> dict:
    """Version 1 (runs written before the schema tag; vocabulary.RESULTS_SCHEMA_CHANGES[1]) -> 2."""
    params, tags, metrics = dict(run["params"]), dict(run["tags"]), dict(run["metrics"])
    # The oldest runs logged their identity (and the training record) only as tags; the tag
    # `strategy` held the variant.
    for key in ("dataset", "family", STOP_REASON, RANKING_METRIC, TASK):
        if key not in params and key in tags:
            params[key] = tags[key]
    for key in ("variant", "strategy"):
        if key not in params and "strategy" in tags:
            params[key] = tags["strategy"]
    params.setdefault(TASK, DEFAULT_TASK)  # before tasks, every run was multiclass
    # A failed or unfinished run carried no identity tags beyond these: the rest was in its name.
    if "strategy" in tags:
        tags["variant"] = tags["strategy"]
    label = _V1_LABEL.search(run["name"] or "")
    tags.pop("modality_dropout", None)
    tags.pop("seed", None)
    if label:
        tags["modality_dropout"], tags["seed"] = label["dropout"], label["seed"]
    error = (tags.get(TAG_ERROR) or "").splitlines()
    tags[TAG_ERROR_LINE] = error[0] if error else ""
    kind = _V1_ERROR_TYPE.match(tags[TAG_ERROR_LINE])
    tags[TAG_ERROR_TYPE] = kind[1] if kind else ""
    # The references before tasks: the majority-class predictor only, named "majority_<metric>".
    for old, metric in ((MAJORITY_ACCURACY, "accuracy"), (MAJORITY_MACRO_F1, "macro_f1")):
        if old in metrics and reference_metric(metric) not in metrics:
            metrics[reference_metric(metric)] = metrics[old]
    # The oldest logged the tuning gain (test accuracy, tuned - default) but not the defaults' accuracy.
    if "default_test_accuracy" not in metrics and {"tuning_gain", "test_accuracy"} <= set(metrics):
        metrics["default_test_accuracy"] = metrics["test_accuracy"] - metrics["tuning_gain"]
    return {**run, "params": params, "tags": tags, "metrics": metrics}


# A version-1 run name: "<dataset> · <variant> · dropout <label> · seed <n>[ · fold <k>]".
_V1_LABEL = re.compile(r"dropout (?P<dropout>\S+) · seed (?P<seed>-?\d+)")
_V1_ERROR_TYPE = re.compile(r"^([A-Za-z_][\w.]*): ")
# version -> the function that brings a run of that version to the next one
UPGRADES: dict[int, Callable[[dict], dict]] = {1: _upgrade_1_to_2}


def upgrade_run(run: dict, version: int) -> dict:
    """``run`` ({"name", "params", "tags", "metrics"}, as MLflow holds them) written in results-schema
    ``version``, brought to the current version (vocabulary.RESULTS_SCHEMA). Raises NewerSchema for a
    version this fusebench does not know."""
    if version > RESULTS_SCHEMA:
        raise NewerSchema(f"run {run.get('name')!r} was written in results schema {version}; this fusebench "
                          f"reads up to {RESULTS_SCHEMA}: update fusebench to report it")
    for step in range(version, RESULTS_SCHEMA):
        run = UPGRADES[step](run)
    return run


# ------------------------------------------------------------------ the current shape
def _finished(run: dict, run_id: str) -> dict:
    """A row of ``MatrixRuns.ok`` from a run in the current shape."""
    params = run["params"]
    record = {
        "dataset": params.get("dataset", "?"), "variant": params.get("variant", "?"),
        "strategy": params.get("strategy", "?"), "family": params.get("family", "?"),
        "dropout": dropout_label(params.get("modality_dropout")),
        "seed": int(_float(params.get("seed"), -1)),
        "device": params.get("device", "?"),
        "run_id": run_id,
        RANKING_METRIC: params.get(RANKING_METRIC), STOP_REASON: params.get(STOP_REASON), TASK: params.get(TASK),
    }
    if FOLD in params:  # k-fold cross-validation: a replicate is a (fold, seed) pair
        record[FOLD] = int(_float(params[FOLD], -1))
    if ENERGY_SOURCE in params:  # where its energy figures come from (absent on runs from before energy)
        record[ENERGY_SOURCE] = params[ENERGY_SOURCE]
    record.update({k: v for k, v in run["metrics"].items() if k not in CURVE_METRICS})
    return record


def _problem(run: dict, status: str | None) -> dict:
    """A row of ``MatrixRuns.problems`` from a failed or unfinished run in the current shape: its
    identity from the tags it was started with."""
    tags = run["tags"]
    return {
        "dataset": tags.get("dataset", "?"), "variant": tags.get("variant", "?"),
        "strategy": tags.get("strategy", "?"), "family": tags.get("family", "?"),
        "dropout": dropout_label(tags["modality_dropout"]) if tags.get("modality_dropout") else "?",
        "seed": int(_float(tags.get("seed"), -1)),
        **({FOLD: int(_float(tags[FOLD], -1))} if FOLD in tags else {}),
        "status": "failed" if status == "failed" else "unfinished",
        "error_type": tags.get(TAG_ERROR_TYPE, ""),
        "error": tags.get(TAG_ERROR_LINE, ""),
        # rows per combination of modalities present, where the run got as far as logging them
        **{k: v for k, v in run["metrics"].items() if k.startswith(DATA_ROWS_PREFIX)},
    }


@dataclass
class MatrixRuns:
    matrix_id: str
    ok: pd.DataFrame  # one row per finished cell: ID_COLUMNS + device + ranking_metric + stop_reason + every metric
    problems: pd.DataFrame  # failed or unfinished cells: ID_COLUMNS + status + error
    parent: dict = field(default_factory=dict)  # tags and config of the parent run
    tracking_uri: str = ""  # where the runs were read (per-run artifacts and metric histories are fetched there)


def _search_all(client, experiment_id: str, filter_string: str, **kwargs) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string, max_results=50000, page_token=token, **kwargs)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _float(value, default=float("nan")) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def fetch_matrix(tracking_uri: str, matrix_id: str | None = None) -> MatrixRuns:
    """Every cell run of one matrix (the newest matrix when none is given)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        raise LookupError(f"no '{EXPERIMENT}' experiment in tracking store {tracking_uri}; run `make bench` first")
    eid = experiment.experiment_id
    parent_filter = f"tags.`{TAG_KIND}` = 'matrix'"
    if matrix_id is not None:
        parent_filter += f" and tags.`{TAG_MATRIX}` = '{matrix_id}'"
    parents = client.search_runs([eid], parent_filter, order_by=["attributes.start_time DESC"], max_results=1)
    if not parents:
        what = f"matrix '{matrix_id}'" if matrix_id else "matrix runs"
        raise LookupError(f"no {what} in tracking store {tracking_uri}; run `make bench` first")
    parent_run = parents[0]
    matrix_id = parent_run.data.tags[TAG_MATRIX]
    parent = {"run_id": parent_run.info.run_id, "tags": dict(parent_run.data.tags),
              "metrics": dict(parent_run.data.metrics),  # phase_seconds.*, wall_seconds once the bench finished
              "config": {k[len("config."):]: _json(v) for k, v in parent_run.data.params.items()
                         if k.startswith("config.")}}
    runs = _search_all(client, eid, f"tags.`{TAG_KIND}` = 'cell' and tags.`{TAG_MATRIX}` = '{matrix_id}'")
    ok, problems = [], []
    for run in runs:
        tags = dict(run.data.tags)
        current = upgrade_run({"name": run.info.run_name, "params": dict(run.data.params), "tags": tags,
                               "metrics": dict(run.data.metrics)}, schema_version(tags))
        status = tags.get(TAG_STATUS)
        if status == "ok" and run.info.status == "FINISHED":
            ok.append(_finished(current, run.info.run_id))
        else:
            problems.append(_problem(current, status))
    ok_frame = pd.DataFrame(ok, columns=None if ok else ID_COLUMNS + ["device", "test_accuracy"])
    problem_frame = pd.DataFrame(problems, columns=None if problems else ID_COLUMNS + ["status", "error_type", "error"])
    if not problem_frame.empty and not ok_frame.empty:  # families of failed variants, known from their other runs
        families = ok_frame.drop_duplicates("variant").set_index("variant")["family"]
        unknown = problem_frame["family"] == "?"
        problem_frame.loc[unknown, "family"] = problem_frame.loc[unknown, "variant"].map(families).fillna("?")
    return MatrixRuns(matrix_id, ok_frame, problem_frame, parent, tracking_uri=tracking_uri)


def _json(value: str):
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value
