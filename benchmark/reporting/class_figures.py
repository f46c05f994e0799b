"""Per-class and per-epoch figures: confusion matrices (rows normalised, counts written in the cells
when there are few classes) and learning curves (each run a thin line, the mean a thick one)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

DPI = 110
ANNOTATE_MAX = 12  # up to this many classes every cell shows its count
NAME_CHARS = 16  # class names longer than this are shortened on the axes
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
BASELINE_COLOUR = "#000000"


def _short(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[:NAME_CHARS - 1] + "…"


def confusion_figure(panels: list[tuple[str, list[str], np.ndarray]], path: Path) -> Path:
    """One heatmap per (title, class names, counts (C, C): rows true, columns predicted), side by side.
    Colour = the share of the true class's rows (each row sums to 1); counts in the cells for at most
    ANNOTATE_MAX classes."""
    classes = max(len(names) for _, names, _ in panels)
    side = max(4.0, 0.42 * classes + 1.6)
    fig, axes = plt.subplots(1, len(panels), figsize=(side * len(panels) + 1.2, side + 0.6), squeeze=False,
                             layout="constrained")
    image = None
    for k, (ax, (title, names, counts)) in enumerate(zip(axes[0], panels)):
        counts = np.asarray(counts, dtype=float)  # (C, C)
        totals = counts.sum(axis=1, keepdims=True)  # (C, 1)
        shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)  # (C, C), rows sum to 1
        image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        ax.grid(False)
        ticks = range(len(names))
        ax.set_xticks(ticks, [_short(n) for n in names], rotation=45 if len(names) > 3 else 0,
                      ha="right" if len(names) > 3 else "center")
        ax.set_xlabel("predicted class")
        if k and names == panels[0][1]:  # the same classes as the panel on its left: its row labels serve
            ax.set_yticks(ticks, [""] * len(names))
        else:
            ax.set_yticks(ticks, [_short(n) for n in names])
            ax.set_ylabel("true class")
        ax.set_title(title, fontsize=10.5)
        if len(names) <= ANNOTATE_MAX:
            size = 9 if len(names) <= 6 else 7.5
            for i in ticks:
                for j in ticks:
                    ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=size,
                            color="white" if shares[i, j] > 0.6 else "#1a1a1a")
    bar = fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    bar.set_label("share of the true class's test rows")
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def learning_curves_figure(series: list[tuple[str, bool, list[list[tuple[int, float]]]]], path: Path,
                           ylabel: str, title: str) -> Path:
    """Validation metric per epoch: for each (label, is the baseline, runs' (epoch, value) points) each run
    a thin line and the mean over the runs still training at that epoch a thick one."""
    fig, ax = plt.subplots(figsize=(8.0, 4.6))
    colours = iter(PALETTE)
    for label, baseline, runs in series:
        colour = BASELINE_COLOUR if baseline else next(colours, "#7f7f7f")
        by_epoch: dict[int, list[float]] = {}
        for points in runs:
            if not points:
                continue
            epochs, values = zip(*points)
            ax.plot(epochs, values, color=colour, linewidth=0.8, alpha=0.35)
            for epoch, value in points:
                by_epoch.setdefault(epoch, []).append(value)
        if by_epoch:
            epochs = sorted(by_epoch)
            ax.plot(epochs, [float(np.mean(by_epoch[e])) for e in epochs], color=colour, linewidth=2.4,
                    linestyle="--" if baseline else "-", label=f"{label} (n = {sum(1 for r in runs if r)})")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path
