"""The per-modality missing curves as a figure: one panel per modality, the test score as only that
modality goes missing (the others present), for the top configurations, `concat` and the best
unimodal baseline."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from benchmark.reporting.analysis import BASELINE, UNIMODAL, DatasetAnalysis, config_label, metric_label
from benchmark.reporting.figures import _axis, _reference_name, _save, plt
from benchmark.reporting.modality_missing import ModalityMissing


def chosen_rows(curves: ModalityMissing, k: int = 4) -> list:
    """The rows drawn: the best configuration (ranked order, any training dropout) of each of the k best
    fused strategies, the best `concat` configuration, and the best unimodal one."""
    ranked = curves.configs
    fused = ranked[ranked["family"] != UNIMODAL].drop_duplicates("variant")  # one line per strategy
    rows = [r for _, r in fused.head(k).iterrows()]
    base = fused[fused["variant"] == BASELINE]
    if len(base) and not any(r["variant"] == BASELINE for r in rows):
        rows.append(base.iloc[0])
    uni = ranked[ranked["family"] == UNIMODAL]
    if len(uni):
        rows.append(uni.iloc[0])
    return rows


def modality_missing_curves(a: DatasetAnalysis, curves: ModalityMissing, path: Path, k: int = 4) -> Path | None:
    if not curves.modalities or len(curves.rates) < 2:
        return None
    rows = chosen_rows(curves, k)
    if not rows:
        return None
    ncols = min(3, len(curves.modalities))
    nrows = math.ceil(len(curves.modalities) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.6 * ncols, 4.3 * nrows + 0.9), squeeze=False, sharey=True)
    xs = np.array(curves.rates)
    styles = ["-", "--", "-.", (0, (5, 1, 1, 1, 1, 1))]
    reference = a.majority.get(curves.metric, float("nan"))
    for index, modality in enumerate(curves.modalities):
        ax = axes[index // ncols][index % ncols]
        for n, r in enumerate(rows):
            ys = np.array([r[f"{modality}:{x}"] for x in curves.rates], dtype=float)
            is_uni, is_base = r["family"] == UNIMODAL, r["variant"] == BASELINE
            ax.plot(xs, ys, linestyle=":" if is_uni else styles[n % len(styles)], marker="o", markersize=3.5,
                    linewidth=2.2 if is_base else 1.6,
                    color="black" if is_base else ("#7f7f7f" if is_uni else f"C{n}"),
                    label=f"{config_label(r)} (d={r['dropout']})" + (" (best unimodal)" if is_uni else ""))
        if reference == reference:
            ax.axhline(reference, color="#555", linestyle="--", linewidth=1, label=_reference_name(a))
        ax.set_title(f"only {modality} missing (others present)")
        ax.set_xlabel(f"test-time missing rate of {modality} (% of rows)")
        if index % ncols == 0:
            ax.set_ylabel(_axis(curves.metric))
    for index in range(len(curves.modalities), nrows * ncols):
        axes[index // ncols][index % ncols].set_visible(False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=8.5, frameon=False)
    fig.suptitle(f"{a.name}: {metric_label(curves.metric)} as one modality goes missing at test time "
                 "(mean over seeds; d = training dropout)", fontsize=12.5)
    fig.tight_layout(rect=(0, 0.06 + 0.035 * math.ceil(len(labels) / 3), 1, 1))
    return _save(fig, path)
