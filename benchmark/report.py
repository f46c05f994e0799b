"""Comparison report built from the MLflow tracking store alone (never imports torch).

Kept as the stable import path (`from benchmark.report import build_report`); the code lives in
the `benchmark.reporting` package."""

from benchmark.reporting import build_report, mean_ci95, paired_ttest, pareto_front

__all__ = ["build_report", "mean_ci95", "paired_ttest", "pareto_front"]
