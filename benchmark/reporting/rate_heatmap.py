"""Training dropout rate against test-time missing rate: for each strategy, the curve metric (the
ranking metric wherever the runs logged its curve) at every test-time missing rate for every
training dropout rate the matrix ran, as one heat map per dataset (one panel per strategy; rows:
training rates, columns: test rates). The values are the configurations' mean curve points, the
same numbers as the missing-rate curves, so the map adds no new measurement: it shows at a glance
whether a model keeps up only up to the rate it was trained at.

The finding stated with it ("robustness falls off beyond the training rate") is measured inside each
strategy: at each test rate, its best training rate sets the level; a configuration's shortfall is
how far it trails that level. A configuration trained at rate d falls off beyond it when its mean
shortfall at test rates above d exceeds its mean shortfall at rates up to d by more than FALL_OFF
(one point of a [0, 1] metric; 1% of the typical score for an error metric)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.reporting.analysis import DatasetAnalysis, metric_label
from benchmark.reporting.figures import _axis, _save, plt
from benchmark.reporting.numbers import num
from benchmark.reporting.section_context import SectionContext

FALL_OFF = 0.01  # shortfall beyond the training rate minus shortfall up to it, in the metric's units
PANEL_COLUMNS = 3


@dataclass(frozen=True)
class RateGrid:
    """One strategy's map: ``values[i, j]`` is the mean test score of the configuration trained at
    ``train_rates[i]`` with ``test_rates[j]`` % of modality inputs removed at test time (nan where
    that configuration did not run or did not log the point); ``marked[i]`` says whether that
    configuration carries a mark (collapsed, not converged)."""

    variant: str
    train_rates: tuple[str, ...]  # training-dropout labels, as the runs logged them, numeric ones ascending
    test_rates: tuple[int, ...]  # percent
    values: np.ndarray  # (train rates, test rates)
    marked: tuple[bool, ...]


@dataclass(frozen=True)
class FallOff:
    """A configuration whose score falls off beyond its training rate (see the module docstring)."""

    variant: str
    train_rate: str
    within: float  # mean shortfall at test rates up to the training rate
    beyond: float  # mean shortfall at test rates above it


@dataclass(frozen=True)
class RateMaps:
    metric: str
    higher_is_better: bool
    grids: tuple[RateGrid, ...]  # in leaderboard order of each strategy's best configuration
    checked: int  # configurations with test rates on both sides of their training rate
    falling: tuple[FallOff, ...]  # largest excess first
    tolerance: float


def _rate(label: str) -> float | None:
    """The numeric training rate of a dropout label ("0.3" -> 0.3); None for a per-modality label."""
    try:
        return float(label)
    except (TypeError, ValueError):
        return None


def rate_grids(a: DatasetAnalysis) -> tuple[RateGrid, ...]:
    """Every ranked strategy's map, from the configurations' mean curve points ("missing:<rate>")."""
    if not a.missing_rates or a.ranked.empty:
        return ()
    ranked = a.ranked
    labels = sorted({str(d) for d in ranked["dropout"]},
                    key=lambda d: (_rate(d) is None, _rate(d) if _rate(d) is not None else 0.0, d))
    grids = []
    for variant in dict.fromkeys(ranked["variant"]):
        here = ranked[ranked["variant"] == variant]
        rows = [d for d in labels if (here["dropout"].astype(str) == d).any()]
        values = np.full((len(rows), len(a.missing_rates)), np.nan)
        marked = []
        for i, d in enumerate(rows):
            row = here[here["dropout"].astype(str) == d].iloc[0]
            values[i] = [row[f"missing:{r}"] for r in a.missing_rates]
            marked.append(bool(row["marked"]))
        grids.append(RateGrid(variant, tuple(rows), tuple(a.missing_rates), values, tuple(marked)))
    return tuple(grids)


def _tolerance(a: DatasetAnalysis, grids: tuple[RateGrid, ...]) -> float:
    if a.curve_higher_is_better:
        return FALL_OFF
    finite = np.concatenate([g.values[np.isfinite(g.values)] for g in grids]) if grids else np.array([])
    return FALL_OFF * float(np.median(np.abs(finite))) if finite.size else FALL_OFF


def fall_offs(a: DatasetAnalysis, grids: tuple[RateGrid, ...]) -> tuple[int, tuple[FallOff, ...], float]:
    """(configurations checked, those that fall off beyond their training rate, the tolerance). Only
    unmarked configurations with a numeric training rate and test rates on both sides of it are checked,
    against the strategy's unmarked configurations."""
    tolerance = _tolerance(a, grids)
    checked, falling = 0, []
    for g in grids:
        trusted = [i for i, m in enumerate(g.marked) if not m]
        if len(trusted) < 2:
            continue
        better = g.values[trusted] if a.curve_higher_is_better else -g.values[trusted]
        with np.errstate(all="ignore"):
            level = np.nanmax(better, axis=0)  # the best training rate at each test rate
        for k, i in enumerate(trusted):
            rate = _rate(g.train_rates[i])
            if rate is None:
                continue
            shortfall = level - better[k]
            tests = np.array(g.test_rates) / 100
            within, beyond = shortfall[tests <= rate + 1e-9], shortfall[tests > rate + 1e-9]
            within, beyond = within[np.isfinite(within)], beyond[np.isfinite(beyond)]
            if not len(within) or not len(beyond):
                continue
            checked += 1
            if beyond.mean() - within.mean() > tolerance:
                falling.append(FallOff(g.variant, g.train_rates[i], float(within.mean()), float(beyond.mean())))
    falling.sort(key=lambda f: -(f.beyond - f.within))
    return checked, tuple(falling), tolerance


def rate_maps(a: DatasetAnalysis) -> RateMaps | None:
    """None when the dataset logged no missing-rate curve or ran one training rate only."""
    grids = rate_grids(a)
    if not grids or len({d for g in grids for d in g.train_rates}) < 2:
        return None
    checked, falling, tolerance = fall_offs(a, grids)
    return RateMaps(a.curve_metric, a.curve_higher_is_better, grids, checked, falling, tolerance)


def rate_heatmap(a: DatasetAnalysis, maps: RateMaps, path: Path) -> Path:
    """One panel per strategy, a shared colour scale; each cell carries its value (2 decimals)."""
    grids = maps.grids
    ncols = min(PANEL_COLUMNS, len(grids))
    nrows = math.ceil(len(grids) / ncols)
    n_test = len(grids[0].test_rates)
    most_rows = max(len(g.train_rates) for g in grids)
    width, height = 0.55 * n_test + 1.3, 0.36 * most_rows + 1.1
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols + 1.2, height * nrows + 0.9), squeeze=False)
    finite = np.concatenate([g.values[np.isfinite(g.values)] for g in grids])
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    vmax = max(vmax, vmin + 1e-6)
    cmap = "viridis" if maps.higher_is_better else "viridis_r"
    image = None
    for index, g in enumerate(grids):
        ax = axes[index // ncols][index % ncols]
        image = ax.imshow(g.values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
        ax.grid(False)
        ax.set_xticks(range(n_test), [str(r) for r in g.test_rates], fontsize=8)
        ax.set_yticks(range(len(g.train_rates)), [d + (" †" if m else "") for d, m in zip(g.train_rates, g.marked)],
                      fontsize=8)
        for i in range(g.values.shape[0]):
            for j in range(g.values.shape[1]):
                v = g.values[i, j]
                share = (v - vmin) / (vmax - vmin) if math.isfinite(v) else 1.0
                dark = share < 0.55 if maps.higher_is_better else share > 0.45
                ax.text(j, i, f"{v:.2f}" if math.isfinite(v) else "n/a", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
        ax.set_title(g.variant, fontsize=10)
        if index % ncols == 0:
            ax.set_ylabel("training dropout rate", fontsize=9)
        if index // ncols == nrows - 1 or index + ncols >= len(grids):
            ax.set_xlabel("test-time missing rate (%)", fontsize=9)
    for index in range(len(grids), nrows * ncols):
        axes[index // ncols][index % ncols].set_visible(False)
    fig.suptitle(f"{a.name}: test {metric_label(maps.metric)} by training dropout rate (rows) and test-time "
                 "missing rate (columns)\n(mean over seeds; one panel per strategy)", fontsize=12)
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    bar = fig.add_axes((0.945, 0.15, 0.012, 0.7))
    fig.colorbar(image, cax=bar, label=_axis(maps.metric))
    return _save(fig, path)


def finding_text(maps: RateMaps) -> str:
    """The finding in words: which configurations fall off beyond their training rate, or that none does."""
    name = metric_label(maps.metric)
    rule = (f"a configuration falls off beyond its training rate when, at test rates above that rate, it trails "
            f"the strategy's best training rate by more than {maps.tolerance:.3g} {name} more on average than at "
            "test rates up to it")
    if not maps.checked:
        return ("**Beyond the training rate:** not checked: no strategy has two unmarked training rates with test "
                f"rates on both sides of one ({rule}).")
    if not maps.falling:
        return (f"**Beyond the training rate:** no configuration's {name} falls off beyond the rate it was trained "
                f"at ({maps.checked} checked; {rule}).")
    shown = maps.falling[:5]
    parts = "; ".join(f"`{f.variant}` trained at {f.train_rate}: trails by {num(f.beyond)} above {f.train_rate} "
                      f"against {num(f.within)} up to it" for f in shown)
    more = f" (and {len(maps.falling) - len(shown)} more)" if len(maps.falling) > len(shown) else ""
    return (f"**Beyond the training rate:** robustness falls off beyond the training rate for {len(maps.falling)} "
            f"of {maps.checked} configurations checked: {parts}{more}. Mean shortfall behind the strategy's best "
            f"training rate at each test rate, in test {name} ({rule}).")


def write_rate_heatmap(section: SectionContext) -> None:
    a, doc = section.a, section.doc
    maps = rate_maps(a)
    if maps is None:
        return
    doc.heading("Training dropout rate against test-time missing rate", 3)
    figure = rate_heatmap(a, maps, section.png("rate_heatmap"))
    marked = any(any(g.marked) for g in maps.grids)
    section.cite["rate_heatmap"] = doc.figure(
        f"Test {metric_label(maps.metric)} of each strategy (panels) by the modality-dropout rate it was trained "
        "with (rows) and the share of modality inputs removed at test time (columns, %); each cell is the mean "
        "over seeds of the logged missing-rate curve point, the same values as the missing-rate curves, rounded "
        "to 2 decimals; one colour scale for every panel"
        + ("" if maps.higher_is_better else " (lower is better; brighter is better)")
        + (". † marks a marked configuration (collapsed or not converged), left out of the finding" if marked
           else "") + ".", figure)
    doc.para(finding_text(maps))
