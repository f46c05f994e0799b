"""The typed pieces of a Plan (benchmark/run/plan.py): its Optuna studies and its work-queue units.

A unit is what one Ray task (or the in-process runner) runs at a time (benchmark/run/ray_bench.py):
one tuning-trial slot of a study, or one final cell. Each unit names the units it waits for: a
study's trial slots run in slot order, so each samples and is pruned against the same earlier
trials however many workers run the matrix, and a study's cells wait for all of its slots."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Union

from benchmark.train.results import Cell


@dataclass(frozen=True)
class Study:
    """One Optuna study: its key (the study name), the cell its trials train (the study's first cell
    at the rate it tunes at), the cells that retrain its best trial, in plan order, and the ids of its
    trial-slot units, in slot order."""

    key: str
    tuning_cell: Cell
    cells: tuple[Cell, ...]
    trial_units: tuple[str, ...]


@dataclass(frozen=True)
class TrialUnit:
    """Trial slot ``slot`` of study ``study_key``: one budget trial of the study, training
    ``tuning_cell``; it waits for the study's earlier slots (``waits_for``)."""

    kind: ClassVar[str] = "trial"
    id: str
    study_key: str
    tuning_cell: Cell
    slot: int
    waits_for: tuple[str, ...]


@dataclass(frozen=True)
class CellUnit:
    """One final cell of study ``study_key``, with its configuration hash (its MLflow tag); it
    waits for every trial slot of its study (``waits_for``)."""

    kind: ClassVar[str] = "cell"
    id: str
    study_key: str
    cell: Cell
    cell_hash: str
    waits_for: tuple[str, ...]


Unit = Union[TrialUnit, CellUnit]
