"""Read one matrix from the MLflow tracking store (local or remote) into pandas tables.
Only MLflow's client is used, so a report can be rebuilt where torch is not installed."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pandas as pd

from benchmark.vocabulary import (CURVE_LR, CURVE_TRAIN_LOSS, CURVE_VAL_METRIC, DATA_ROWS_PREFIX, EXPERIMENT,
                                    FOLD, RANKING_METRIC, STOP_REASON, TAG_ERROR, TAG_KIND, TAG_MATRIX, TAG_STATUS, TASK,
                                    dropout_label)

ID_COLUMNS = ["dataset", "variant", "strategy", "family", "dropout", "seed"]
# Step metrics (learning curves): run.data.metrics holds only their last value, which no table shows.
CURVE_METRICS = (CURVE_TRAIN_LOSS, CURVE_VAL_METRIC, CURVE_LR)
_LABEL = re.compile(r"dropout (?P<dropout>\S+) · seed (?P<seed>-?\d+)")


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
        params, tags = run.data.params, run.data.tags
        status = tags.get(TAG_STATUS)
        if status == "ok" and run.info.status == "FINISHED":
            record = {
                "dataset": params.get("dataset", tags.get("dataset", "?")),
                "variant": params.get("variant", tags.get("strategy", "?")),
                "strategy": params.get("strategy", tags.get("strategy", "?")),
                "family": params.get("family", tags.get("family", "?")),
                "dropout": dropout_label(params.get("modality_dropout")),
                "seed": int(_float(params.get("seed"), -1)),
                "device": params.get("device", "?"),
                "run_id": run.info.run_id,
                # absent (None) on runs logged before the training protocol recorded them
                RANKING_METRIC: params.get(RANKING_METRIC, tags.get(RANKING_METRIC)),
                STOP_REASON: params.get(STOP_REASON, tags.get(STOP_REASON)),
                TASK: params.get(TASK, tags.get(TASK)),  # None on runs logged before tasks: multiclass
            }
            if FOLD in params:  # k-fold cross-validation: a replicate is a (fold, seed) pair
                record[FOLD] = int(_float(params[FOLD], -1))
            record.update({k: v for k, v in run.data.metrics.items() if k not in CURVE_METRICS})
            ok.append(record)
        else:
            # Failed or unfinished runs carry only the tags set at start: take the rest from the run name.
            label = _LABEL.search(run.info.run_name or "")
            error = tags.get(TAG_ERROR, "")
            problems.append({
                "dataset": tags.get("dataset", "?"), "variant": tags.get("strategy", "?"),
                "strategy": tags.get("strategy", "?"), "family": tags.get("family", "?"),
                "dropout": dropout_label(label["dropout"]) if label else "?",
                "seed": int(label["seed"]) if label else -1,
                **({FOLD: int(_float(tags[FOLD], -1))} if FOLD in tags else {}),
                "status": "failed" if status == "failed" else "unfinished",
                "error": error.splitlines()[0] if error else "",
                # rows per combination of modalities present, where the run got as far as logging them
                **{k: v for k, v in run.data.metrics.items() if k.startswith(DATA_ROWS_PREFIX)},
            })
    ok_frame = pd.DataFrame(ok, columns=None if ok else ID_COLUMNS + ["device", "test_accuracy"])
    problem_frame = pd.DataFrame(problems, columns=None if problems else ID_COLUMNS + ["status", "error"])
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
