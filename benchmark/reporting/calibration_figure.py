"""Calibration error against the test-time missing rate as a figure: one line per configuration the
calibration table shows (the leading fused strategies and `concat`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.reporting.analysis import BASELINE, DatasetAnalysis, config_label
from benchmark.reporting.calibration_curves import CalibrationCurves
from benchmark.reporting.figures import _save, plt


def ece_curves(a: DatasetAnalysis, curves: CalibrationCurves, path: Path, k: int = 5) -> Path | None:
    """ECE (mean over seeds) at each missing rate; None with fewer than two rates or nothing to draw."""
    rows = curves.shown(k)
    if len(curves.rates) < 2 or rows.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    xs = np.array(curves.rates)
    styles = ["-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1))]
    for n, (_, r) in enumerate(rows.iterrows()):
        ys = np.array([r[f"ece:{x}"] for x in curves.rates], dtype=float)
        is_base = r["variant"] == BASELINE
        ax.plot(xs, ys, linestyle="-" if is_base else styles[n % len(styles)], marker="o", markersize=3.5,
                linewidth=2.2 if is_base else 1.6, color="black" if is_base else f"C{n}",
                label=f"{config_label(r)} (d={r['dropout']})")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("test-time missing rate (% of each row's modalities removed)")
    ax.set_ylabel("expected calibration error (15 bins; lower is better)")
    ax.set_title(f"{a.name}: calibration error as modalities go missing\n(mean over seeds; d = training dropout)")
    ax.legend(loc="upper left", fontsize=8.5, frameon=False)
    return _save(fig, path)
