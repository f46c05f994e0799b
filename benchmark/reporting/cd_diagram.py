"""Critical-difference diagram (Demsar 2006, figure 1): strategies on an average-rank axis, thick
bars joining groups whose average ranks differ by less than the Nemenyi critical difference
(not significantly different). Matplotlib, Agg backend."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DPI = 110


def nemenyi_groups(ranks: Sequence[float], cd: float) -> list[tuple[int, int]]:
    """Maximal runs (first, last) of positions in ascending rank order whose ranks span less than `cd`
    (no pair inside differs significantly); runs of one strategy and runs inside a longer one are left out."""
    order = sorted(ranks)
    groups: list[tuple[int, int]] = []
    if cd != cd:
        return groups
    for i in range(len(order)):
        j = i
        while j + 1 < len(order) and order[j + 1] - order[i] < cd:
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in groups):
            groups.append((i, j))
    return groups


def cd_diagram(names: Sequence[str], ranks: Sequence[float], cd: float, n_datasets: int, path: Path,
               title: str = "") -> Path:
    """Draw the diagram: rank 1 (best) on the left; the better half of the strategies labelled on the
    left, the rest on the right; the CD interval drawn above the axis."""
    pairs = sorted(zip(ranks, names))
    k = len(pairs)
    low, high = 1, max(k, 2)
    half = (k + 1) // 2
    rows = max(half, k - half)
    groups = nemenyi_groups([r for r, _ in pairs], cd)
    height = 1.5 + 0.26 * rows + 0.1 * len(groups)
    fig, ax = plt.subplots(figsize=(9.0, height))
    ax.set_xlim(low - 0.9 - 0.12 * k, high + 0.9 + 0.12 * k)
    top, step = 0.0, 1.0
    first_label = top - 0.35 - 0.32 * len(groups) - 0.6
    ax.set_ylim(first_label - (rows - 1) * step * 0.75 - 0.35, 2.2)
    ax.axis("off")
    ax.grid(False)
    # the rank axis with ticks
    ax.plot([low, high], [top, top], color="black", linewidth=1.2)
    for tick in range(low, high + 1):
        ax.plot([tick, tick], [top, top + 0.18], color="black", linewidth=1.0)
        ax.text(tick, top + 0.3, str(tick), ha="center", va="bottom", fontsize=9)
    ax.text((low + high) / 2, top + 0.95, "average rank over datasets (1 = best)", ha="center", va="bottom",
            fontsize=9.5)
    # the critical difference, drawn from rank 1
    if cd == cd:
        end = min(low + cd, high + 0.8)
        ax.plot([low, end], [top + 1.7, top + 1.7], color="#c0392b", linewidth=2)
        for x in (low, end):
            ax.plot([x, x], [top + 1.6, top + 1.8], color="#c0392b", linewidth=1.5)
        ax.text(end + 0.12, top + 1.7, f"CD = {cd:.2f} (Nemenyi, alpha 0.05, N = {n_datasets})",
                ha="left", va="center", fontsize=8.5, color="#c0392b")
    # group bars just under the axis
    for g, (i, j) in enumerate(groups):
        y = top - 0.35 - 0.32 * g
        ax.plot([pairs[i][0] - 0.04, pairs[j][0] + 0.04], [y, y], color="#2c3e50", linewidth=4, alpha=0.8,
                solid_capstyle="round")
    # strategies: elbow lines from the axis to a label
    for index, (rank, name) in enumerate(pairs):
        left = index < half
        row = index if left else k - 1 - index
        y = first_label - row * step * 0.75
        x_end = ax.get_xlim()[0] + 0.15 if left else ax.get_xlim()[1] - 0.15
        ax.plot([rank, rank, x_end], [top, y, y], color="#555", linewidth=0.9)
        ax.plot([rank], [top], marker="o", markersize=4, color="#2c3e50")
        ax.text(x_end + (0.05 if left else -0.05), y + 0.12, f"{name} ({rank:.2f})",
                ha="left" if left else "right", va="bottom", fontsize=9)
    if title:
        ax.set_title(title, fontsize=11.5)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path
