"""Pareto fronts of the ranking metric against what a configuration costs to make: its training energy
and its parameter count. One point per configuration (strategy x training dropout, mean over seeds); the
front is the configurations that no other beats on both axes. The metric axis is fitted to the fused
strategies (from a little below the lowest to a little above the best), so that they separate instead
of sharing one line of a 0-1 axis; a point below that range is drawn on the axis's lower edge as a
triangle and named in the front table, never left out silently."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmark.reporting.analysis import UNIMODAL, DatasetAnalysis, metric_label
from benchmark.reporting.figures import _axis, _colour, _label_points, _reference_name, _save, plt
from benchmark.reporting.stats import pareto_front
from benchmark.vocabulary import ENERGY_TRAIN_WH

PAD = 0.08  # the metric axis reaches this share of the fused strategies' spread beyond them


@dataclass(frozen=True)
class CostAxis:
    """A cost a front is drawn against: the column of ``front_frame``, its axis label and title."""

    column: str
    label: str
    title: str


ENERGY = CostAxis("energy_train_wh", "training energy of the tuned retrain (Wh, log scale; lower is better)",
                  "training energy")
PARAMS = CostAxis("params", "parameters (log scale; lower is better)", "parameter count")


def front_frame(a: DatasetAnalysis) -> pd.DataFrame:
    """The dataset's configurations (a.ranked, its order) with the mean training energy of their runs
    beside them (nan where none logged one)."""
    ranked = a.ranked.copy()
    runs = a.runs
    if ENERGY_TRAIN_WH in runs and len(runs):
        means = runs.groupby(["variant", "dropout"])[ENERGY_TRAIN_WH].mean()
        ranked[ENERGY.column] = [means.get((r["variant"], r["dropout"]), float("nan")) for _, r in ranked.iterrows()]
    else:
        ranked[ENERGY.column] = float("nan")
    return ranked


def on_front(a: DatasetAnalysis, data: pd.DataFrame, cost: CostAxis) -> pd.Series:
    """Whether each configuration of ``data`` is on the front of the ranking metric against ``cost`` (lower
    cost better); marked configurations (collapsed, not converged) never are."""
    values = a.better(data[a.score]).where(~data["marked"])  # the front wants higher = better
    return pd.Series(pareto_front(data[cost.column].tolist(), values.tolist(), True), index=data.index)


def metric_range(a: DatasetAnalysis, data: pd.DataFrame) -> tuple[float, float]:
    """The metric axis: the fused (not unimodal), unmarked configurations' scores and the best score of
    any configuration (a unimodal baseline may lead), with PAD of their spread either side."""
    fused = data[(data["family"] != UNIMODAL) & ~data["marked"]][a.score].dropna()
    scores = fused if len(fused) else data[a.score].dropna()
    best = float(data[a.score].max() if a.higher_is_better else data[a.score].min())
    low, high = min(float(scores.min()), best), max(float(scores.max()), best)
    pad = max(PAD * (high - low), 0.005 * max(abs(high), 1e-3))
    return low - pad, high + pad


def score_vs_cost_front(a: DatasetAnalysis, path: Path, cost: CostAxis) -> tuple[Path, pd.DataFrame] | None:
    """The figure and the configurations on its front (in order of cost), or None where no configuration
    has both a score and the cost."""
    frame = front_frame(a)
    data = frame[frame[cost.column].notna() & frame[a.score].notna() & (frame[cost.column] > 0)]
    if data.empty:
        return None
    front = on_front(a, data, cost)
    low, high = metric_range(a, data)
    below = data[a.score] < low if a.higher_is_better else data[a.score] > high
    edge = low if a.higher_is_better else high
    shown = data[a.score].where(~below, edge)  # a point beyond the axis sits on its edge
    fig, ax = plt.subplots(figsize=(8.5, 5.6))
    for family in sorted(data["family"].unique()):
        ax.scatter([], [], s=40, color=_colour(family), label=family)  # the legend's entry, one per family
        for marked, beyond in ((False, False), (True, False), (False, True), (True, True)):
            part = (data["family"] == family) & (data["marked"] == marked) & (below == beyond)
            if not part.any():
                continue
            style = ({"marker": "v", "edgecolor": "white", "linewidth": 0.5} if beyond else
                     {"marker": "x", "linewidth": 1.5} if marked else {"marker": "o", "edgecolor": "white",
                                                                       "linewidth": 0.5})
            ax.scatter(data.loc[part, cost.column], shown[part], s=40, color=_colour(family), alpha=0.85, zorder=3,
                       clip_on=not beyond, **style)  # a point on the edge is drawn whole
    if data["marked"].any():
        ax.scatter([], [], s=42, color="#333", marker="x", label="marked (collapsed / not converged)")
    if below.any():
        ax.scatter([], [], s=40, color="#333", marker="v", label="beyond the axis (value in the table)")
    reference = a.reference_score
    if reference == reference and low <= reference <= high:
        ax.axhline(reference, color="#555", linestyle=":", linewidth=1.2, label=_reference_name(a))
    on = data[front].sort_values(cost.column)
    ax.plot(on[cost.column], shown[on.index], drawstyle="steps-post", color="black", linewidth=1.3, zorder=2,
            label="Pareto front")
    ax.scatter(on[cost.column], shown[on.index], s=80, facecolor="none", edgecolor="black", linewidth=1.4, zorder=4,
               clip_on=False)
    x_low, x_high = float(data[cost.column].min()), float(data[cost.column].max())
    ax.set_xscale("log")
    if x_low == x_high:  # one cost for every point: give the log axis a decade around it
        ax.set_xlim(x_low / 3, x_high * 3)
    else:
        ax.set_xlim(x_low / 1.6, x_high * 1.6)
    ax.set_ylim(low, high)
    _label_points(ax, on.assign(**{a.score: shown[on.index]}), cost.column, a.score, log=True)
    ax.set_xlabel(cost.label)
    ax.set_ylabel(f"{_axis(a.score)}, mean over seeds")
    ax.set_title(f"{a.name}: {metric_label(a.score)} vs {cost.title}\n(one point per strategy x training dropout; "
                 "metric axis fitted to the fused strategies)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, title="family", title_fontsize=9)
    return _save(fig, path), on.assign(beyond_axis=below[on.index].to_numpy())


def front_names(front: pd.DataFrame) -> str:
    """The configurations of a front, cheapest first: "`concat` (d=0.3), `tfn` (d=0)"."""
    return ", ".join(f"`{r['variant']}` (d={r['dropout']})" for _, r in front.iterrows())
