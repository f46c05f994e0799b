"""The "Across datasets" part of the opening section: the ranks table, the critical-difference
diagram and the cross-dataset verdict in words (reporting/summary.py), with the strategies left
out of the ranks or compared with a caveat, then the Bayesian comparisons with concat (Table B)."""

from __future__ import annotations

from pathlib import Path

from benchmark.reporting.analysis import metric_label
from benchmark.reporting.bayes_section import write_bayes_across
from benchmark.reporting.bayesian import BayesComparisons
from benchmark.reporting.crossdataset import CrossDataset
from benchmark.reporting.document import Document
from benchmark.reporting.summary import cross_dataset_items
from benchmark.reporting.verdicts import CrossDatasetVerdict


def write_cross_dataset(doc: Document, x: CrossDataset, verdict: CrossDatasetVerdict, n_datasets: int,
                        folder: Path, into: list, bayes: BayesComparisons | None = None) -> None:
    """Written into `into`, the opening section's blocks. `n_datasets` counts every dataset of the
    matrix (with or without finished runs): a one-dataset matrix gets one sentence and no heading.
    `bayes`, the Bayesian comparisons with concat over the datasets, ends the part (Table B)."""
    from benchmark.reporting.cd_diagram import cd_diagram

    if n_datasets < 2:  # a one-dataset matrix: nothing across datasets to rank
        doc.para(cross_dataset_items(verdict, None, None)[0], into=into)
        return
    doc.heading("Across datasets", 3, into=into)
    table = figure = None
    if x.n >= 2 and len(x.variants) >= 2:
        ranks = x.mean_ranks
        header = ["strategy", "average rank"] + [f"`{d}` ({metric_label(x.metrics[d])}"
                                                 + ("" if x.higher[d] else ", lower is better") + ")"
                                                 for d in x.datasets]
        rows = [[f"`{v}`" + (" [marked]" if v in x.marked else ""), f"{ranks[v]:.2f}"]
                + [f"{x.scores.loc[d, v]:.3f} (rank {x.ranks.loc[d, v]:g})" for d in x.datasets]
                for v in x.variants]
        table = doc.table(
            "Average rank of each fused strategy over the datasets (1 = best): per dataset, the mean of its ranking "
            "metric over every seed and training dropout rate (no per-strategy choice of dropout, so no selection on "
            "test data), ranked within the dataset in the metric's direction; ties share the average rank.",
            header, rows, "lr" + "r" * len(x.datasets), label="Table A", into=into)
        png = cd_diagram(x.variants, [float(ranks[v]) for v in x.variants], x.cd, x.n,
                         folder / "cross_dataset_cd.png",
                         title=f"Critical-difference diagram over {x.n} datasets (Friedman / Nemenyi)")
        figure = doc.figure(
            f"Critical-difference diagram (Demsar 2006): average rank over the {x.n} datasets (1 = best, left); "
            f"thick bars join strategies whose average ranks differ by less than the Nemenyi critical difference "
            f"(CD = {x.cd:.2f}, alpha 0.05), i.e. not significantly different.", png, label="Figure A", into=into)
    doc.bullets(cross_dataset_items(verdict, figure, table), into=into)
    notes = [f"`{v}`: {why}" for v, why in x.left_out.items()]
    notes += [f"`{v}`: finished at only some training dropout rates on {', '.join(f'`{d}`' for d in where)}; its "
              "score there is the mean over the rates it has" for v, where in x.partial.items()]
    if notes:
        doc.para("Left out of the cross-dataset ranks, or compared with a caveat: " + "; ".join(notes) + ".",
                 into=into)
    write_bayes_across(doc, bayes, x.marked, into)
