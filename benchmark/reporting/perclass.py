"""A dataset's per-class and per-epoch view: the confusion matrix of the winner and of `concat`
(summed over their runs: seeds, and folds where the matrix has them) and the validation learning
curves of the top configurations. Artifacts and metric histories are fetched only for the runs
shown (RunDetails)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from benchmark.reporting.analysis import (BASELINE, DatasetAnalysis, config_label, metric_label,
                                          metric_spec, same_config)
from benchmark.reporting.class_figures import ANNOTATE_MAX, confusion_figure, learning_curves_figure
from benchmark.reporting.details import RunDetails
from benchmark.reporting.document import Document
from benchmark.vocabulary import CURVE_VAL_METRIC

CLASSIFYING = ("multiclass", "binary")  # tasks whose runs log a confusion matrix
MANY_CLASSES = 20  # above this a heatmap is unreadable: the most confused pairs are listed instead
CONFUSED_PAIRS = 10  # pairs listed per configuration when there are many classes
TOP_CURVES = 3  # configurations whose learning curves are drawn (plus concat)
OLD_RUNS = "recorded before confusion matrices were logged"


def _runs_of(a: DatasetAnalysis, row) -> pd.DataFrame:
    runs = a.runs
    if "run_id" not in runs:
        return runs.iloc[0:0]
    chosen = runs[(runs["variant"] == row["variant"]) & (runs["dropout"] == row["dropout"])]
    order = [c for c in ("fold", "seed") if c in chosen]
    return chosen.sort_values(order) if order else chosen


def _baseline_row(a: DatasetAnalysis, dropout) -> pd.Series | None:
    """`concat` at the given training dropout, else its best-ranked configuration."""
    ranked = a.ranked
    concat = ranked[ranked["variant"] == BASELINE] if len(ranked) else ranked
    if concat.empty:
        return None
    same = concat[concat["dropout"] == dropout]
    return (same if len(same) else concat).iloc[0]


def _name(row) -> str:
    return f"`{config_label(row)}` (train dropout {row['dropout']})"


def summed_confusion(details: RunDetails, run_ids: list[str]) -> tuple[list[str], np.ndarray | None, int]:
    """(class names, counts summed over the runs that logged a matrix with the same classes, how many did)."""
    names, total, used = [], None, 0
    for run_id in run_ids:
        content = details.confusion(run_id)
        if content is None:
            continue
        counts = np.asarray(content["matrix"], dtype=np.int64)  # (C, C)
        if total is None:
            names, total = content["labels"], counts
        elif content["labels"] == names:
            total = total + counts
        else:
            continue  # another class list (a changed card): not added to this sum
        used += 1
    return names, total, used


def confused_pairs(names: list[str], counts: np.ndarray, top: int = CONFUSED_PAIRS) -> list[tuple[str, str, int, float]]:
    """The off-diagonal cells with the most rows: (true class, predicted class, rows, share of the true class)."""
    totals = counts.sum(axis=1)  # (C,)
    off = counts.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:top]
    pairs = []
    for flat in order:
        i, j = divmod(int(flat), counts.shape[1])
        if off[i, j] <= 0:
            break
        pairs.append((names[i], names[j], int(off[i, j]), float(off[i, j]) / max(1, int(totals[i]))))
    return pairs


def write_per_class(doc: Document, a: DatasetAnalysis, png: Callable[[str], Path], cite: dict,
                    details: RunDetails) -> None:
    """Append the confusion-matrix and learning-curve subsections of one dataset."""
    if a.ranked.empty:
        return
    winner = a.trusted.iloc[0] if len(a.trusted) else None  # the best overall (reporting/verdicts.py)
    baseline = _baseline_row(a, winner["dropout"] if winner is not None else None)
    if a.task in CLASSIFYING:
        _confusion(doc, a, png, cite, details, winner, baseline)
    _curves(doc, a, png, cite, details, winner, baseline)


def _confusion(doc, a, png, cite, details, winner, baseline) -> None:
    doc.heading("Per-class errors", 3)
    shown = [("winner", winner)] if winner is not None else []
    if baseline is not None and not same_config(winner, baseline):
        shown.append(("baseline", baseline))
    if not shown:
        doc.para("No winner is named and no `concat` run finished on this dataset: no confusion matrix to show.")
        return
    panels, notes, pairs = [], [], []
    for role, row in shown:
        runs = _runs_of(a, row)
        names, counts, used = summed_confusion(details, list(runs["run_id"]) if len(runs) else [])
        if counts is None:
            notes.append(f"The confusion matrix of {_name(row)} is not available: its runs were {OLD_RUNS}.")
            continue
        if used < len(runs):
            notes.append(f"{_name(row)}: {len(runs) - used} of {len(runs)} runs logged no confusion matrix "
                         f"({OLD_RUNS}); the matrix sums the other {used}.")
        accuracy = np.trace(counts) / max(1, counts.sum())
        title = (f"{role}: {config_label(row)}, dropout {row['dropout']}\n"
                 f"{used} run(s), {int(counts.sum()):,} test rows, accuracy {accuracy:.3f}")
        panels.append((title, names, counts))
        pairs += [[config_label(row), f"{row['dropout']}", t, p, f"{n:,}", f"{share:.3f}"]
                  for t, p, n, share in confused_pairs(names, counts)]
    if winner is None:
        notes.insert(0, "No configuration is named winner on this dataset (every candidate is marked), so only "
                        f"`{BASELINE}` is shown.")
    if not panels:
        doc.bullets(notes)
        return
    what = " and ".join(f"the {role}, {_name(row)}" for role, row in shown)
    intro = (f"Confusion {'matrices' if len(panels) > 1 else 'matrix'} of {what}, on the test split with every modality present, summed over their "
             "runs (seeds" + (" and folds" if "fold" in a.runs and a.runs["fold"].notna().any() else "") + "). Rows "
             "are the true class, columns the predicted one" + (" (binary: at the 0.5 threshold)" if a.task == "binary"
                                                                 else "") + ".")
    classes = max(len(names) for _, names, _ in panels)
    if classes > MANY_CLASSES:
        doc.para(intro + f" With {classes} classes a heatmap would be unreadable; the table lists the "
                 f"{CONFUSED_PAIRS} most frequent confusions of each configuration.")
        cite["confusion"] = doc.table(
            f"`{a.name}`: the most frequent confusions (true class predicted as another), summed over runs; share = "
            "the fraction of the true class's test rows that received that prediction.",
            ["configuration", "train dropout", "true class", "predicted as", "rows", "share of true class"],
            pairs or [["—", "—", "—", "—", "0", "—"]], "llllrr")
    else:
        doc.para(intro)
        counts_note = ("; the number in each cell is the count of test rows" if classes <= ANNOTATE_MAX else "")
        cite["confusion"] = doc.figure(
            f"`{a.name}`: confusion {'matrices' if len(panels) > 1 else 'matrix'}, colour = share of the true class's test rows (each row sums to 1)"
            f"{counts_note}. The diagonal holds the correct predictions.",
            confusion_figure(panels, png("confusion")))
    doc.bullets(notes)


def _curves(doc, a, png, cite, details, winner, baseline) -> None:
    pool = a.trusted if len(a.trusted) else a.ranked
    chosen = [row for _, row in pool.head(TOP_CURVES).iterrows()]
    if baseline is not None and not any(same_config(baseline, row) for row in chosen):
        chosen.append(baseline)
    series = []
    for row in chosen:
        runs = _runs_of(a, row)
        histories = [details.history(run_id, CURVE_VAL_METRIC) for run_id in runs["run_id"]] if len(runs) else []
        if any(histories):
            series.append((f"{config_label(row)}, dropout {row['dropout']}", row["variant"] == BASELINE, histories))
    if not series:
        return  # runs logged before learning curves were recorded: nothing to draw
    doc.heading("Learning curves", 3)
    metric = metric_label(a.ranking)
    lower = "" if metric_spec(a.ranking)[1] else " (lower is better)"
    top = min(TOP_CURVES, len(pool))
    top = "the leaderboard's top configuration" if top == 1 else f"the leaderboard's top {top} configurations"
    with_baseline = (f" and `{BASELINE}`" if len(chosen) > min(TOP_CURVES, len(pool)) else
                     f" (`{BASELINE}` among them)" if any(row["variant"] == BASELINE for row in chosen) else "")
    cite["learning_curves"] = doc.figure(
        f"`{a.name}`: validation {metric}{lower} after each epoch of the tuned retrain, for {top}{with_baseline}"
        f"{'; `' + BASELINE + '` is black and dashed' if with_baseline else ''}. Each run (seed) is a thin line; the thick line is the mean "
        "over the runs still training at that epoch (early stopping ends runs at different epochs; the weights of "
        "each run's best epoch are the ones tested).",
        learning_curves_figure(series, png("learning_curves"), f"validation {metric}{lower}",
                               f"{a.name}: validation {metric} per epoch"))
