"""The report as one Document (reporting/document.py writes it as Markdown and as HTML): the
opening lines, then "Which strategy to use" (the marks explained, the cross-dataset verdict, each
dataset's verdicts in words), then one section per dataset, then the failed and unfinished cells.
The dataset sections are written first, so the summary can cite their tables and figures, and the
summary is then put in front of them."""

from __future__ import annotations

from pathlib import Path

from benchmark.reporting.analysis import DatasetAnalysis
from benchmark.reporting.cross_section import write_cross_dataset
from benchmark.reporting.dataset_section import write_dataset_section
from benchmark.reporting.details import RunDetails
from benchmark.reporting.document import Document
from benchmark.reporting.fetch import MatrixRuns
from benchmark.reporting.opening import write_opening
from benchmark.reporting.replicates import uses_folds
from benchmark.reporting.section_context import SectionContext
from benchmark.reporting.summary import dataset_items
from benchmark.reporting.verdicts import ReportVerdicts

MARKS = ("**Marks.** Every table of configurations ends with a \"mark\" column: **collapsed k/n** when k of the "
         "configuration's n finished seeds collapsed (the test predictions are (nearly) all one class, or macro-F1 "
         "does not beat the majority-class predictor's), **not converged k/n** when k seeds were stopped by the "
         "epoch cap while the validation metric was still improving. A marked configuration keeps its numbers in "
         "every table but is never ranked and never named best or recommended; in the text it is written with its "
         "mark in brackets, and a collapsed one has no robustness score. Leaderboards end with the majority-class "
         "and chance predictors as unranked reference rows where the runs logged them.")
ONE_SEED = ("Only one seed was run: no confidence intervals or significance tests are possible; the ranking may be "
            "noise. Run more seeds (`--seeds 0,1,2`) for claims that hold.")


def render(runs: MatrixRuns, analyses: list[DatasetAnalysis], verdicts: ReportVerdicts, folder: Path) -> Document:
    """`analyses` one per dataset of the matrix (analysis.analyse_matrix), `verdicts` from them
    (verdicts.report_verdicts); the figures are written to `folder`."""
    doc = Document(f"fusebench report: matrix `{runs.matrix_id}`")
    ok, problems = runs.ok, runs.problems
    write_opening(doc, runs, [a.name for a in analyses])
    summary_at = len(doc.blocks)
    sections = []
    for a, verdict in zip(analyses, verdicts.datasets):
        section = SectionContext(doc, a, folder, RunDetails(runs.tracking_uri) if runs.tracking_uri else None,
                                 runs.parent or {}, bayes=verdict.bayes, calibration=verdict.calibration,
                                 uncertainty=verdict.uncertainty, reliance=verdict.reliance)
        write_dataset_section(section)
        sections.append(section)
    summary: list = []
    doc.heading("Which strategy to use", 2, into=summary)
    if any(a.judged for a in analyses):
        doc.para(MARKS, into=summary)
    if not analyses:
        doc.para("No cell runs were found for this matrix.", into=summary)
    else:  # the verdict over datasets (ranks, Friedman, CD diagram) before the per-dataset claims
        write_cross_dataset(doc, verdicts.cross, verdicts.across, len(analyses), folder, into=summary,
                            bayes=verdicts.bayes)
    for section, verdict in zip(sections, verdicts.datasets):
        if len(sections) > 1:
            doc.heading(f"`{section.a.name}`", 3, into=summary)
        doc.bullets(dataset_items(verdict, section.cite), into=summary)
    if len(set(ok["seed"]) if len(ok) else ()) < 2 and len(ok) and not uses_folds(ok):
        doc.para(ONE_SEED, into=summary)
    doc.blocks[summary_at:summary_at] = summary
    if len(problems):
        doc.heading("Failed and unfinished cells", 2)
        doc.table("Cells without a finished result (failed: the error; unfinished: still running or interrupted).",
                  ["dataset", "strategy", "train dropout", "seed", "status", "error"],
                  [[r["dataset"], r["variant"], r["dropout"],
                    str(r["seed"]) if r["seed"] >= 0 else "?", r["status"], r["error"] or "—"]
                   for _, r in problems.sort_values(["dataset", "variant", "dropout", "seed"]).iterrows()], "lllrll")
    return doc
