"""One tidy table of a matrix's finished cells, for notebooks (benchmark/api.py): one row per cell
run, metric names decoded into plain columns with the vocabulary's own prefixes:

- identity: dataset, strategy, variant, family, dropout (the label, e.g. "0.3"), seed (and fold
  where the runs have one), task, ranking_metric, run_id;
- score: the test score in the row's ranking metric (all modalities present), and each of the task's
  metrics under its own name (accuracy, macro_f1, auroc, mae, ...);
- robustness, tuning_gain, collapsed, not_converged, epochs_run, best_epoch, stop_reason;
- subset:<a>+<b>: the score in the ranking metric with only those modalities available;
- missing:<NN>: the score at test-time missing rate NN% (every modality); missing[<m>]:<NN> and
  robustness[<m>]: only modality m missing, where the runs logged those curves;
- ece, nll, brier: calibration on the full input (classifying tasks; benchmark/train/calibration.py),
  and ece_missing:<NN>, nll_missing:<NN>, brier_missing:<NN> along the missing-rate curve,
  ece_missing[<m>]:<NN> (and so on) with only modality m missing, where the runs logged them;
- reliance[<m>]: the drop in the ranking metric when modality m is permuted across the test rows
  (positive = worse), reliance_share[<m>] its share of the clipped reliances and reliance_equity how
  evenly the model relies on its modalities (benchmark/train/reliance.py), where the runs logged them;
- cost: param_count, train_samples_per_s, inference_samples_per_s, latency_ms_per_batch,
  seconds_per_epoch, wall_seconds, the memory metrics the runs logged, and energy_train_wh,
  energy_per_1k_inferences_j, energy_source where the runs measured energy (benchmark/train/energy.py).

A metric a run did not measure is NaN there; a run that named no ranking metric is ranked by its
task's default (the reader, reporting/fetch.py, sets every run's task)."""

from __future__ import annotations

import re

import pandas as pd

from benchmark.reporting.fetch import MatrixRuns
from benchmark.vocabulary import (BEST_EPOCH, CALIBRATION_METRICS, COLLAPSED, DEFAULT_RANKING_METRICS,
                                    ENERGY_PER_1K_INFERENCES_J, ENERGY_SOURCE, ENERGY_TRAIN_WH, EPOCHS_RUN,
                                    NOT_CONVERGED, RANKING_METRIC, RANKING_METRICS, RELIANCE_EQUITY,
                                    RELIANCE_SHARE_PREFIX, STOP_REASON, TASK, metric_name, missing_prefix,
                                    reliance_modality, subset_modalities, subset_prefix)

IDENTITY = ["dataset", "strategy", "variant", "family", "dropout", "fold", "seed", TASK, RANKING_METRIC, "score"]
OUTCOME = ["robustness", "tuning_gain", COLLAPSED, NOT_CONVERGED, EPOCHS_RUN, BEST_EPOCH, STOP_REASON]
COST = ["param_count", "train_samples_per_s", "inference_samples_per_s", "latency_ms_per_batch", "seconds_per_epoch",
        "wall_seconds", "peak_gpu_mem_mb", "train_step_tensor_mb", "activation_mb", "peak_cpu_rss_mb",
        "cpu_rss_growth_mb", ENERGY_TRAIN_WH, ENERGY_PER_1K_INFERENCES_J, ENERGY_SOURCE]
_RATE = re.compile(r"^\d+$")


def _metric_key(name: str) -> str:
    """"test_macro_f1" -> "macro_f1"."""
    return name[len("test_"):]


def _decoded(record: dict, metric: str) -> dict:
    """The subset and missing-rate columns of one run, in ``metric`` (accuracy where the run logged
    those scores only in accuracy: runs of results schema 1 made without per-metric scores, which no
    upgrade can supply)."""
    out = {}
    for wanted in dict.fromkeys((metric, "accuracy")):
        subsets, missing = subset_prefix(wanted), missing_prefix(wanted)
        found = False
        for name, value in record.items():
            if name.startswith(subsets):
                out["subset:" + "+".join(subset_modalities(name[len(subsets):]))] = value
                found = True
            elif name.startswith(missing) and _RATE.match(name[len(missing):]):
                out[f"missing:{int(name[len(missing):])}"] = value
                found = True
            elif name.startswith(f"test_{wanted}_missing_") and "." in name:
                modality, _, rate = name[len(f"test_{wanted}_missing_"):].rpartition(".")
                if _RATE.match(rate):
                    out[f"missing[{modality}]:{int(rate)}"] = value
        if found:
            break
    return out


def _calibration_curves(record: dict) -> dict:
    """The calibration columns along the missing-rate curves: "test_ece_missing.30" -> "ece_missing:30",
    "test_ece_missing_image.30" -> "ece_missing[image]:30" (likewise nll and brier)."""
    out = {}
    for metric in CALIBRATION_METRICS:
        missing, one = missing_prefix(metric), f"test_{metric}_missing_"
        for name, value in record.items():
            if name.startswith(missing) and _RATE.match(name[len(missing):]):
                out[f"{metric}_missing:{int(name[len(missing):])}"] = value
            elif name.startswith(one) and "." in name:
                modality, _, rate = name[len(one):].rpartition(".")
                if _RATE.match(rate):
                    out[f"{metric}_missing[{modality}]:{int(rate)}"] = value
    return out


def _reliance(record: dict) -> dict:
    """"reliance_permuted.image" -> "reliance[image]", "reliance_share.image" -> "reliance_share[image]",
    and "reliance_equity" as it is."""
    out = {}
    for name, value in record.items():
        if (modality := reliance_modality(name)) is not None:
            out[f"reliance[{modality}]"] = value
        elif (modality := reliance_modality(name, RELIANCE_SHARE_PREFIX)) is not None:
            out[f"reliance_share[{modality}]"] = value
    if RELIANCE_EQUITY in record:
        out[RELIANCE_EQUITY] = record[RELIANCE_EQUITY]
    return out


def cell_table(runs: MatrixRuns) -> pd.DataFrame:
    """One row per finished cell run of ``runs`` (reporting/fetch.py), decoded as the module says."""
    rows = []
    for record in runs.ok.to_dict("records"):
        record = {k: v for k, v in record.items() if not (isinstance(v, float) and v != v)}  # logged here
        task = record[TASK]
        ranking = record.get(RANKING_METRIC) or DEFAULT_RANKING_METRICS.get(task, "accuracy")
        column = RANKING_METRICS.get(ranking, (metric_name(ranking),))[0]
        row = {key: record.get(key) for key in ("dataset", "strategy", "variant", "family", "dropout", "fold", "seed")}
        row.update({TASK: task, RANKING_METRIC: ranking, "score": record.get(column, float("nan"))})
        row.update({_metric_key(name): value for name, value in record.items()
                    if name.startswith("test_") and "_subset." not in name and "_missing" not in name})
        row.update({key: record[key] for key in OUTCOME if key in record})
        for flag in (COLLAPSED, NOT_CONVERGED):
            if flag in row:
                row[flag] = bool(row[flag] > 0.5)
        row.update(_decoded(record, ranking))
        row.update({f"robustness[{name[len('robustness_missing_'):]}]": value for name, value in record.items()
                    if name.startswith("robustness_missing_")})
        row.update(_calibration_curves(record))
        row.update(_reliance(record))
        row.update({key: record[key] for key in COST if key in record})
        row["run_id"] = record.get("run_id")
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=[c for c in IDENTITY if c != "fold"])
    if table["fold"].isna().all():
        table = table.drop(columns="fold")  # no k-fold in this matrix
    first = [c for c in IDENTITY if c in table]
    return table[first + [c for c in table.columns if c not in first]].sort_values(
        [c for c in ("dataset", "variant", "dropout", "fold", "seed") if c in table]).reset_index(drop=True)
