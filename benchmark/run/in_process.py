"""A matrix run in the bench's own process (`fusebench bench --workers 1`): no Ray, the same units
in the same order as the Ray tasks (ray_bench.plan_tasks: each study's trial slots in slot order, then
its cells in the groups the profile stacks), one after another. What is done is read from the stores
first (store_progress.py), and each unit checks them again before it works (unit_runner.py), so a
bench that was killed resumes where the stores are."""

from __future__ import annotations

import os
import socket
from typing import Callable

from benchmark.features.tensors import FeatureSet
from benchmark.progress import MatrixDisplay
from benchmark.run.plan import Plan
from benchmark.run.ray_bench import plan_tasks
from benchmark.run.store_progress import units_done
from benchmark.run.unit_runner import MatrixOutcome, UnitRunner
from benchmark.run.units import TrialUnit
from benchmark.stores.retry import retry


def matrix_display(plan: Plan, quiet: bool = False) -> MatrixDisplay:
    """The matrix-wide progress display over a plan's units."""
    return MatrixDisplay({u.id: u.cell.label() for u in plan.cell_units}, len(plan.units), quiet=quiet)


def run_in_process(plan: Plan, tracking_uri: str, storage_url: str, log: Callable[[str], None] = print,
                   retry_failed: bool = False, features: dict[str, FeatureSet] | None = None) -> MatrixOutcome:
    """Run every unit of ``plan`` the stores do not hold yet, in this process (``features``: the
    matrix's features, already built). ``retry_failed``: run failed cells again."""
    runner = UnitRunner(plan, tracking_uri, storage_url, f"{socket.gethostname()}-{os.getpid()}", log=log,
                        features=features)
    done = units_done(plan, runner.tracker, runner.storage, retry_failed)
    runner.outcome.skipped = sum(u.id in done for u in plan.cell_units)
    log(f"matrix {plan.matrix_id}: {len(plan.cells)} cells in {len(plan.studies)} studies x "
        f"{plan.trial_slots_per_study} trial slots; {runner.outcome.skipped} cells already finished")
    with matrix_display(plan) as display:
        display.sync(done)
        for task in plan_tasks(plan, done):
            units = [plan.unit(unit) for unit in task.units]
            # A store that drops out mid-unit: back off and redo the unit (its own checks skip what was
            # recorded), or give up with StoreUnavailable after the budget.
            if isinstance(units[0], TrialUnit):
                retry(lambda: runner.trial(units[0], display), f"trial unit {task.key}")
            else:
                retry(lambda: runner.cells(units, display), f"cell unit {task.key}")
            done.update(task.units)
            display.sync(done)
    return runner.finish()
