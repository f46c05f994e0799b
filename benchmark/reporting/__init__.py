"""Comparison reports from the MLflow tracking store alone (never imports torch).

fetch: MLflow runs -> pandas; stats: CI, paired test, Pareto front; analysis: per-dataset
numbers; verdicts: the recommendations as data; summary: the verdicts in words; render (with
the section modules): one Document; figures: PNGs; document: Markdown + self-contained HTML;
build: fetch -> analyse -> verdicts -> render, and writes reports/<matrix id>/."""

from benchmark.reporting.build import EmptyReport, build_report
from benchmark.reporting.stats import mean_ci95, paired_ttest, pareto_front

__all__ = ["EmptyReport", "build_report", "mean_ci95", "paired_ttest", "pareto_front"]
