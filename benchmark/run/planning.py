"""Planning a matrix: its cells (strategies x datasets x training dropout rates x seeds), their
configuration hashes, the Optuna studies they share, and the work-queue units in run order.
Pure planning: nothing here trains or records anything."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

from benchmark.data.cards import load_all_cards
from benchmark.run.config import MatrixConfig, expand
from benchmark.train.results import Cell
from strategies import discover, load_plugin


def plan_cells(config: MatrixConfig) -> list[Cell]:
    """Every cell of the matrix, in run order. Unimodal baselines expand to one per modality."""
    for plugin in config.plugins:
        load_plugin(plugin)
    registry = discover()
    cards = load_all_cards()
    cells = []
    for dataset in expand(config.datasets, sorted(cards), "dataset"):
        modalities = cards[dataset].modality_names
        for strategy in expand(config.strategies, registry.names(), "strategy"):
            cls = registry.get(strategy)
            if cls.family == "unimodal":
                variants = [(f"{strategy}[{m}]", {"modality": m}) for m in modalities]
            elif len(modalities) < cls.min_modalities or (cls.max_modalities and len(modalities) > cls.max_modalities):
                continue  # the strategy states it cannot take this many modalities
            else:
                variants = [(strategy, {})]
            for variant, fixed in variants:
                for dropout in config.dropout_rates:
                    for seed in config.seeds:
                        cells.append(Cell(dataset, strategy, variant, float(dropout), int(seed), fixed))
    return cells


def budget_tag(config: MatrixConfig) -> str:
    return f"t{config.trials}-e{config.epochs}-b{config.batch_size}"


def cell_hash(cell: Cell, config: MatrixConfig) -> str:
    payload = {**asdict(cell), "budget": budget_tag(config)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def study_units(config: MatrixConfig, cells: list[Cell]) -> dict[str, list[Cell]]:
    """Study key -> its cells, in plan order (one study per dataset, variant, dropout rate)."""
    studies: dict[str, list[Cell]] = {}
    for cell in cells:
        studies.setdefault(cell.study_name(budget_tag(config)), []).append(cell)
    return studies


def trial_unit(study_key: str, slot: int) -> str:
    return f"trial:{study_key}#{slot}"


def cell_unit(cell: Cell, config: MatrixConfig) -> str:
    return cell_unit_of(cell_hash(cell, config))


def cell_unit_of(hash_: str) -> str:
    """The work-queue unit of the cell with this configuration hash (the MLflow tag)."""
    return f"cell:{hash_}"


def matrix_units(config: MatrixConfig, studies: dict[str, list[Cell]]):
    """(unit id, kind, payload) in run order: each study's trial slots, then its cells.
    kind "trial": payload (study key, the study's first cell, slot); kind "cell": payload
    (study key, cell, the study's trial-slot units it waits for)."""
    for study_key, cells in studies.items():
        slots = [trial_unit(study_key, k) for k in range(config.trials)]
        for k, unit in enumerate(slots):
            yield unit, "trial", (study_key, cells[0], k)
        for cell in cells:
            yield cell_unit(cell, config), "cell", (study_key, cell, slots)
