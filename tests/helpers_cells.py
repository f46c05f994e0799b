"""Running one cell by itself, as tests do: the product always runs the cells of a study together
(benchmark/train/cell.py ``run_cells``, benchmark/run/unit_runner.py ``UnitRunner.cells``)."""

from __future__ import annotations

from typing import Callable


def run_cell(cell, features, splits, study, config, metric: str = "accuracy",
             progress: Callable[[str], None] = lambda _: None):
    """One cell's RunResult: ``run_cells`` with a single seed."""
    from benchmark.train.cell import run_cells

    return run_cells([cell], features, splits, study, config, metric, progress)[0]
