"""Which units of a Plan are done, read from the stores themselves: a trial slot is done when its
Optuna study holds a final trial for it (benchmark/train/tuning.py, ``is_final``), a cell when its
MLflow run finished (or failed, unless failed cells are to run again). The Ray executor submits only
the units not done here, and its tasks check the same facts again before they work, so a driver run
again after it died resumes where the stores are."""

from __future__ import annotations

import optuna

from benchmark.run.plan import Plan
from benchmark.tracking.mlflow_runs import MatrixTracker
from benchmark.train.tuning import budget_trials


def final_slots(study_key: str, storage) -> set[int]:
    """The budget slots of a study that hold a final trial (none when the study does not exist yet)."""
    try:
        study = optuna.load_study(study_name=study_key, storage=storage)
    except KeyError:
        return set()
    return {trial.user_attrs["slot"] for trial in budget_trials(study)}


def units_done(plan: Plan, tracker: MatrixTracker, storage, retry_failed: bool = False) -> set[str]:
    """The ids of ``plan``'s units whose results the stores hold (see the module's docstring)."""
    cells = tracker.ended_cells(include_failed=not retry_failed)
    done = {u.id for u in plan.cell_units if u.cell_hash in cells}
    for study in plan.studies:
        slots = final_slots(study.key, storage)
        done |= {unit for slot, unit in enumerate(study.trial_units) if slot in slots}
    return done
