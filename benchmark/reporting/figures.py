"""PNG figures for one dataset (matplotlib, Agg backend: no display needed). Every figure has
a title, axis labels with units and a legend or colour bar, and is sized to be read at 100%."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from benchmark.reporting.analysis import (BASELINE, DEFAULT_TASK, MEMORY_METRICS, REFERENCE_NAMES, UNIMODAL,  # noqa: E402
                                          DatasetAnalysis, config_label, metric_label, metric_spec, tuning_gains)
from benchmark.reporting.stats import pareto_front  # noqa: E402
from benchmark.vocabulary import subset_label  # noqa: E402

DPI = 110
LABEL_ALL_UP_TO = 12  # cost scatter plots name every point up to this many, else the Pareto front's


def _axis(metric: str) -> str:
    """An axis label for a test metric: "test accuracy (fraction correct)", "test MAE (lower is better)"."""
    unit = {"accuracy": "fraction correct", "sign_accuracy": "fraction of signs correct"}.get(metric)
    if not metric_spec(metric)[1]:
        unit = "lower is better"
    return f"test {metric_label(metric)}" + (f" ({unit})" if unit else "")


def _reference_name(a: DatasetAnalysis) -> str:
    return "majority class" if a.task == DEFAULT_TASK else REFERENCE_NAMES[a.task]
FAMILY_COLOURS = {"unimodal": "#7f7f7f", "early": "#1f77b4", "intermediate": "#2ca02c", "late": "#ff7f0e",
                  "attention": "#d62728", "hybrid": "#9467bd"}
plt.rcParams.update({"font.size": 10, "axes.titlesize": 12, "axes.labelsize": 10.5, "legend.fontsize": 9,
                     "axes.grid": True, "grid.alpha": 0.3})


def _colour(family: str) -> str:
    return FAMILY_COLOURS.get(family, "#17becf")


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def top_strategies(a: DatasetAnalysis, k: int, include_unimodal: bool = False) -> list[str]:
    """Variants ordered by their best configuration's ranking score, BASELINE always included when present."""
    ranked = a.ranked
    if not include_unimodal:
        ranked = ranked[ranked["family"] != UNIMODAL]
    order = list(dict.fromkeys(ranked["variant"]))
    chosen = order[:k]
    if BASELINE in order and BASELINE not in chosen:
        chosen.append(BASELINE)
    return chosen


def robustness_heatmap(a: DatasetAnalysis, path: Path, k: int = 6) -> Path | None:
    """Rows: strategy x training dropout; columns: modalities available at test time."""
    if not a.subsets:
        return None
    chosen = top_strategies(a, k)
    ranked = a.ranked
    rows = [r for v in chosen for _, r in ranked[ranked["variant"] == v].sort_values("dropout").iterrows()]
    if not rows:
        return None
    values = np.array([[r[f"subset:{s}"] for s in a.subsets] for r in rows], dtype=float)
    labels = [f"{config_label(r)}  (train dropout {r['dropout']})" for r in rows]
    columns = [subset_label(s) for s in a.subsets]
    fig, ax = plt.subplots(figsize=(2.2 + 1.25 * len(columns) + 1.6, 1.2 + 0.38 * len(rows)))
    finite = values[np.isfinite(values)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    image = ax.imshow(values, cmap="viridis", vmin=vmin, vmax=max(vmax, vmin + 1e-6), aspect="auto")
    ax.grid(False)
    ax.set_xticks(range(len(columns)), columns, rotation=20, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            text = "n/a" if not math.isfinite(v) else f"{v:.3f}"
            dark = math.isfinite(v) and v < vmin + 0.55 * (vmax - vmin)
            ax.text(j, i, text, ha="center", va="center", fontsize=9, color="white" if dark else "black")
    previous = None
    for i, r in enumerate(rows):  # separate strategies
        if previous is not None and r["variant"] != previous:
            ax.axhline(i - 0.5, color="white", linewidth=2.5)
        previous = r["variant"]
    ax.set_xlabel("modalities available at test time")
    ax.set_ylabel("strategy (training modality-dropout rate)")
    name = metric_label(a.subset_metric)
    ax.set_title(f"{a.name}: test {name} by available modalities\n(mean over seeds; top {len(chosen)} strategies)")
    fig.colorbar(image, ax=ax, label=_axis(a.subset_metric), fraction=0.05, pad=0.03)
    return _save(fig, path)


def missing_curves(a: DatasetAnalysis, path: Path, k: int = 5) -> Path | None:
    """The curve metric (the ranking one where logged) against the test-time missing rate, one panel per
    training dropout rate."""
    if not a.missing_rates:
        return None
    ranked = a.ranked
    dropouts = sorted(ranked["dropout"].unique())
    ncols = min(3, len(dropouts))
    nrows = math.ceil(len(dropouts) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.0 * nrows + 0.6), squeeze=False, sharey=True)
    xs = np.array(a.missing_rates)
    styles = ["-", "--", "-.", ":"]
    for index, dropout in enumerate(dropouts):
        ax = axes[index // ncols][index % ncols]
        here = ranked[ranked["dropout"] == dropout]
        fused = here[here["family"] != UNIMODAL]
        chosen = list(fused["variant"][:k])
        if BASELINE in set(fused["variant"]) and BASELINE not in chosen:
            chosen.append(BASELINE)
        uni = here[here["family"] == UNIMODAL]
        if len(uni):
            chosen.append(uni.iloc[0]["variant"])  # the best unimodal baseline (unmarked first)
        for n, variant in enumerate(chosen):
            r = here[here["variant"] == variant].iloc[0]
            ys = np.array([r[f"missing:{x}"] for x in a.missing_rates], dtype=float)
            is_uni = r["family"] == UNIMODAL
            ax.plot(xs, ys, styles[n % len(styles)] if not is_uni else ":", marker="o", markersize=3.5,
                              linewidth=2.2 if variant == BASELINE else 1.6,
                              color="black" if variant == BASELINE else (None if not is_uni else "#7f7f7f"),
                              label=config_label(r) + (" (best unimodal)" if is_uni else ""))
        if a.curve_reference == a.curve_reference:
            ax.axhline(a.curve_reference, color="#555", linestyle="--", linewidth=1, label=_reference_name(a))
        ax.set_title(f"trained with modality dropout {dropout}")
        ax.set_xlabel("test-time missing rate (% of modality inputs removed)")
        if index % ncols == 0:
            ax.set_ylabel(_axis(a.curve_metric))
        ax.legend(loc="best", fontsize=8.5)
    for index in range(len(dropouts), nrows * ncols):
        axes[index // ncols][index % ncols].set_visible(False)
    fig.suptitle(f"{a.name}: {metric_label(a.curve_metric)} as modalities go missing at test time (mean over seeds)",
                 fontsize=12.5)
    fig.tight_layout()
    return _save(fig, path)


def accuracy_vs_cost(a: DatasetAnalysis, path: Path, cost: str) -> Path | None:
    """Scatter of configurations with the Pareto front marked. cost: 'throughput' or 'memory'."""
    ranked = a.ranked
    column = "infer_sps" if cost == "throughput" else "memory"
    score = a.score
    data = ranked[ranked[column].notna() & ranked[score].notna()]
    if data.empty or (cost == "memory" and not a.memory_key):
        return None
    lower_better = cost == "memory"
    # Marked configurations (collapsed, not converged) are drawn but never on the front.
    values = a.better(data[score]).where(~data["marked"])  # the front wants higher = better
    front = np.array(pareto_front(data[column].tolist(), values.tolist(), lower_better))
    fig, ax = plt.subplots(figsize=(8.5, 5.6))
    for family in sorted(data["family"].unique()):
        part = data[(data["family"] == family) & ~data["marked"]]
        ax.scatter(part[column], part[score], s=36, color=_colour(family), label=family, alpha=0.8,
                   edgecolor="white", linewidth=0.5, zorder=3)
        part = data[(data["family"] == family) & data["marked"]]
        if len(part):
            ax.scatter(part[column], part[score], s=42, color=_colour(family), marker="x", linewidth=1.5, zorder=3)
    if data["marked"].any():
        ax.scatter([], [], s=42, color="#333", marker="x", label="marked (collapsed / not converged)")
    low, high = _fitted_limits(data[score], a.reference_score)
    if a.reference_score == a.reference_score and low <= a.reference_score <= high:
        ax.axhline(a.reference_score, color="#555", linestyle=":", linewidth=1.2, label=_reference_name(a))
    elif a.reference_score == a.reference_score:  # far below the points: named, not drawn (it would flatten them)
        ax.plot([], [], color="#555", linestyle=":", linewidth=1.2,
                label=f"{_reference_name(a)}: {a.reference_score:.3f} (off the axis)")
    ax.set_ylim(low, high)
    on = data[front].sort_values(column)
    ax.plot(on[column], on[score], drawstyle="steps-post" if lower_better else "steps-pre",
            color="black", linewidth=1.3, zorder=2, label="Pareto front")
    ax.scatter(on[column], on[score], s=80, facecolor="none", edgecolor="black", linewidth=1.4, zorder=4)
    if cost == "throughput":
        median = float(data[column].median())
        ax.axvline(median, color="#555", linestyle="--", linewidth=1, label=f"median throughput ({median:,.0f}/s)")
        low, high = float(data[column].min()), float(data[column].max())
        if low == high:  # one throughput for every point: give the log axis a decade around it
            ax.set_xlim(low / 3, high * 3)
        ax.set_xscale("log")
        ax.set_xlabel("inference throughput (samples/s, log scale; higher is better)")
        title = f"{metric_label(score)} vs inference throughput"
    else:
        ax.set_xlabel(MEMORY_METRICS[a.memory_key].label + "; lower is better")
        title = f"{metric_label(score)} vs " + MEMORY_METRICS[a.memory_key].title
    # every point named when there are few (labels are spread so none overlap), else the front only
    _label_points(ax, data if len(data) <= LABEL_ALL_UP_TO else on, column, score, log=cost == "throughput")
    ax.set_ylabel(f"{_axis(score)}, mean over seeds" + ("" if score == "accuracy" else "; the ranking metric"))
    ax.set_title(f"{a.name}: {title}\n(one point per strategy x training dropout)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, title="family", title_fontsize=9)
    return _save(fig, path)


def _fitted_limits(values, reference: float) -> tuple[float, float]:
    """A y-range that fits the points (5% margin, at least 0.01), stretched to a reference line only when
    it lies within half the points' spread of them: a majority-class line at 0.1 under points between
    0.8 and 0.95 would press every point into one line."""
    low, high = float(values.min()), float(values.max())
    spread = high - low
    margin = max(0.05 * spread, 0.01)
    if reference == reference and low - 0.5 * max(spread, 0.02) <= reference <= high + 0.5 * max(spread, 0.02):
        low, high = min(low, reference), max(high, reference)
    return low - margin, high + margin


def _label_points(ax, points, column: str, score: str, log: bool) -> None:
    """Name the Pareto-front points; labels near the right edge go to the left of their point. Labels are
    measured, then spread upwards so that no two boxes overlap (reporting/labels.py); a moved label gets a thin
    leader line to its point."""
    from benchmark.reporting.labels import spread

    x0, x1 = ax.get_xlim()
    scale = (lambda v: math.log10(v)) if log else (lambda v: v)
    specs = []
    for _, r in points.iterrows():
        fraction = (scale(r[column]) - scale(x0)) / ((scale(x1) - scale(x0)) or 1.0)
        right = fraction > 0.75
        specs.append((f"{r['variant']} (d={r['dropout']})", (r[column], r[score]), (-8 if right else 8, 4),
                      "right" if right else "left"))
    style = {"textcoords": "offset points", "fontsize": 8.5, "zorder": 5,
             "bbox": {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8}}
    figure = ax.figure
    renderer = figure.canvas.get_renderer()
    for _ in range(4):  # labels spread above the axes (into the title): raise the y-limit and place them again
        trial = [ax.annotate(text, xy, xytext=offset, ha=ha, **style) for text, xy, offset, ha in specs]
        boxes = [tuple(t.get_window_extent(renderer).extents) for t in trial]  # display pixels
        for t in trial:
            t.remove()
        shifts = spread(boxes, pad=3.0)
        top = max((box[3] + shift for box, shift in zip(boxes, shifts)), default=0.0)  # display pixels
        frame = ax.get_window_extent(renderer)
        overflow = top - frame.y1 + 4.0
        if overflow <= 0 or ax.get_yscale() != "linear":
            break
        low, high = ax.get_ylim()
        ax.set_ylim(low, high + overflow * (high - low) / max(frame.height - overflow, frame.height / 2))
    for (text, xy, (dx, dy), ha), shift in zip(specs, shifts):
        lift = shift * 72.0 / figure.dpi  # pixels -> points
        leader = {"arrowstyle": "-", "color": "#777", "linewidth": 0.6, "shrinkA": 0, "shrinkB": 3} if lift else None
        ax.annotate(text, xy, xytext=(dx, dy + lift), ha=ha, arrowprops=leader, **style)


def tuning_gain(a: DatasetAnalysis, path: Path) -> Path | None:
    """Mean gain from tuning per strategy (positive = better), averaged over seeds and training dropout rates."""
    runs = a.runs.assign(tuning_gain=tuning_gains(a.runs, a.tuning_metric)) if len(a.runs) else a.runs
    if "tuning_gain" not in runs or runs["tuning_gain"].notna().sum() == 0:
        return None
    from benchmark.reporting.stats import mean_ci95

    stats = []
    for variant, group in runs.groupby("variant"):
        m, h = mean_ci95(group["tuning_gain"])
        stats.append((variant, group["family"].iloc[0], m, h, int(group["tuning_gain"].notna().sum())))
    stats.sort(key=lambda s: s[2])
    fig, ax = plt.subplots(figsize=(8.0, 1.2 + 0.32 * len(stats)))
    ys = np.arange(len(stats))
    errors = [0 if not math.isfinite(s[3]) else s[3] for s in stats]
    ax.barh(ys, [s[2] for s in stats], xerr=errors, color=[_colour(s[1]) for s in stats], alpha=0.85,
            error_kw={"elinewidth": 1, "capsize": 2})
    ax.set_yticks(ys, [f"{s[0]} (n={s[4]})" for s in stats])
    ax.axvline(0, color="black", linewidth=0.8)
    name, higher = metric_label(a.tuning_metric), metric_spec(a.tuning_metric)[1]
    gain = f"tuned minus default test {name}" if higher else f"default minus tuned test {name} (lower is better)"
    ax.set_xlabel(f"tuning gain: {gain} (bars: 95% CI where n >= 2)")
    ax.set_title(f"{a.name}: gain from tuning (mean over seeds and training dropout rates)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=_colour(f)) for f in sorted({s[1] for s in stats})]
    # outside the axes, right of them: a legend inside would cover bars and error bars
    ax.legend(handles, sorted({s[1] for s in stats}), title="family", loc="upper left", bbox_to_anchor=(1.01, 1.0),
              fontsize=8.5, title_fontsize=9)
    return _save(fig, path)
