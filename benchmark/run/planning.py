"""Planning a matrix: its cells (strategies x datasets x training dropout rates x seeds), their
configuration hashes, the Optuna studies they share, and the work-queue units in run order.
Pure planning: nothing here trains or records anything.

A cell's hash, its study name and the matrix id include the fingerprint of the cell's inputs
(card content, encoder versions, strategy code and search space, protocol version;
benchmark/run/identity.py), so a result is never reused once one of them changed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace

from benchmark.run.config import MatrixConfig, ProfileError, expand
from benchmark.run.dropout import unknown_modalities
from benchmark.run.folds import fold_count, folded_fingerprint, with_folds
from benchmark.run.identity import cell_fingerprint, dataset_fingerprint, load_strategies
from benchmark.run.missing_axis import technique_variants
from benchmark.vocabulary import dropout_label
from benchmark.train.results import Cell


def _pairs(config: MatrixConfig, cards: dict):
    """(dataset, its card, strategy, the strategy's class, why the strategy does not apply to the
    dataset or None) for every dataset x strategy the matrix names, in run order: the one product
    that ``plan_cells`` and ``not_applicable`` both read."""
    registry = load_strategies(config.plugins)
    for dataset, card in cards.items():
        for strategy in expand(config.strategies, registry.names(), "strategy"):
            cls = registry.get(strategy)
            yield dataset, card, strategy, cls, _not_applicable_reason(cls, dataset, len(card.modality_names))


def _not_applicable_reason(cls, dataset: str, count: int) -> str | None:
    """Why a strategy class does not apply to a dataset of ``count`` modalities (its stated
    ``min_modalities`` / ``max_modalities``), or None. Unimodal baselines apply to any card."""
    if cls.family == "unimodal" or not outside_modality_limit(cls, count):
        return None
    limit = f"{cls.min_modalities} to {cls.max_modalities or 'any number of'}"
    return f"takes {limit} modalities; `{dataset}` has {count}"


def plan_cells(config: MatrixConfig) -> list[Cell]:
    """Every cell of the matrix, in run order. Unimodal baselines expand to one per modality."""
    load_strategies(config.plugins)
    cards = config.cards()  # names, globs and card paths (benchmark/run/card_files.py)
    problem = unknown_modalities(config.dropout_rates, cards)
    if problem:
        raise ProfileError(f"profile {config.name!r}: field 'dropout_rates': {problem}")
    cells = []
    for dataset, card, strategy, cls, not_applicable_because in _pairs(config, cards):
        modalities = card.modality_names
        if not_applicable_because:
            continue  # the strategy states it cannot take this many modalities (not_applicable lists it)
        if cls.family == "unimodal":
            variants = [(f"{strategy}[{m}]", {"modality": m}) for m in modalities]
        else:  # one variant per missing-input technique: "concat", "concat@learned" (missing_axis.py)
            variants = technique_variants(strategy, {}, config.missing_inputs)
        # Unimodal baselines stay "zero" only: they read one modality, so a learned stand-in for it
        # would be a constant input (their learned prior logits already cover its absence).
        for variant, fixed in variants:
            for dropout in config.dropout_rates:
                for seed in config.seeds:
                    rate = dropout if isinstance(dropout, tuple) else float(dropout)  # per modality, or one
                    cells.append(Cell(dataset, strategy, variant, rate, int(seed), fixed))
    return with_folds(config, cells)  # k-fold datasets: a cell per fold and seed (benchmark/run/folds.py)


def outside_modality_limit(cls, count: int) -> bool:
    """Whether a strategy class states it cannot take ``count`` modalities (``min_modalities`` /
    ``max_modalities``)."""
    return count < cls.min_modalities or bool(cls.max_modalities and count > cls.max_modalities)


def not_applicable(config: MatrixConfig) -> dict[str, dict[str, str]]:
    """Dataset -> {strategy: why}: the strategies the matrix asks for that state a limit on how many
    modalities they take which the dataset's card falls outside of (``plan_cells`` skips them). The
    report lists them as not applicable instead of leaving them silently missing."""
    skipped: dict[str, dict[str, str]] = {}
    for dataset, _, strategy, _, why in _pairs(config, config.cards()):
        if why:
            skipped.setdefault(dataset, {})[strategy] = why
    return skipped


def budget_tag(config: MatrixConfig) -> str:
    """The training budget in study names and cell hashes: trials, epoch cap, batch size, the
    early-stopping rule (longest wait, its ratio to the best epoch, first epoch it may fire) and
    the token budget (a study tuned under another budget is never continued)."""
    tokens = "all" if config.max_tokens is None else config.max_tokens
    return (f"t{config.trials}-e{config.epochs}-b{config.batch_size}-p{config.patience}"
            f"r{config.patience_ratio:g}m{config.min_epochs}-k{tokens}")


def input_fingerprints(config: MatrixConfig, cells: list[Cell]) -> dict[tuple[str, str], str]:
    """(dataset, strategy) -> fingerprint of the inputs of those cells (identity.cell_fingerprint),
    from the cards as they are now."""
    load_strategies(config.plugins)
    cards = config.cards()
    pairs = sorted({(c.dataset, c.strategy) for c in cells})
    datasets = {d: dataset_fingerprint(cards[d]) for d in {d for d, _ in pairs}}  # the data hashed once per dataset
    return {(d, s): folded_fingerprint(cell_fingerprint(cards[d], s, datasets[d]), fold_count(config, cards[d]))
            for d, s in pairs}


def input_fingerprint(cell: Cell, config: MatrixConfig) -> str:
    """Fingerprint of one cell's inputs (card, encoder versions, strategy code, protocol)."""
    return input_fingerprints(config, [cell])[cell.dataset, cell.strategy]


def cell_hash(cell: Cell, config: MatrixConfig, fingerprint: str | None = None) -> str:
    """The cell's configuration hash (its MLflow tag and work-queue unit): the cell, the budget
    and the fingerprint of its inputs (computed unless given)."""
    fingerprint = fingerprint or input_fingerprint(cell, config)
    # "tuned_at": the rate whose study chose the hyperparameters (config.tuning_dropout): a cell
    # retrained from another rate's study is another result than one tuned at its own rate.
    payload = {**asdict(cell), "budget": budget_tag(config), "inputs": fingerprint,
               "tuned_at": dropout_label(config.tuning_dropout(cell.dropout))}
    if cell.fold is None:
        del payload["fold"]  # a cell without k-fold keeps the hash it had before the field
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def study_units(config: MatrixConfig, cells: list[Cell]) -> dict[str, list[Cell]]:
    """Study key -> its cells, in plan order (one study per dataset, variant, tuning dropout rate
    and inputs fingerprint: under shared tuning the cells of every training rate share one)."""
    fingerprints = input_fingerprints(config, cells)
    studies: dict[str, list[Cell]] = {}
    for cell in cells:
        key = cell.study_name(budget_tag(config), fingerprints[cell.dataset, cell.strategy],
                              config.tuning_dropout(cell.dropout))
        studies.setdefault(key, []).append(cell)
    return studies


def trial_unit(study_key: str, slot: int) -> str:
    return f"trial:{study_key}#{slot}"


def cell_unit(cell: Cell, config: MatrixConfig, fingerprint: str | None = None) -> str:
    return cell_unit_of(cell_hash(cell, config, fingerprint))


def cell_units(config: MatrixConfig, cells: list[Cell]) -> list[str]:
    """The work-queue unit of each cell, in order (the inputs' fingerprints computed once)."""
    fingerprints = input_fingerprints(config, cells)
    return [cell_unit(c, config, fingerprints[c.dataset, c.strategy]) for c in cells]


def cell_unit_of(hash_: str) -> str:
    """The work-queue unit of the cell with this configuration hash (the MLflow tag)."""
    return f"cell:{hash_}"


def matrix_units(config: MatrixConfig, studies: dict[str, list[Cell]]):
    """(unit id, kind, payload) in run order: each study's trial slots, then its cells.
    kind "trial": payload (study key, the study's first cell at the rate the study tunes at, slot,
    the earlier slots' units it waits for: a study's trials run in slot order, so each samples and
    is pruned against the same earlier trials however many workers run the matrix); kind "cell":
    payload (study key, cell, the study's trial-slot units it waits for)."""
    fingerprints = input_fingerprints(config, [c for cells in studies.values() for c in cells])
    for study_key, cells in studies.items():
        slots = [trial_unit(study_key, k) for k in range(config.trials)]
        tuning_cell = replace(cells[0], dropout=config.tuning_dropout(cells[0].dropout))
        for k, unit in enumerate(slots):
            yield unit, "trial", (study_key, tuning_cell, k, slots[:k])
        for cell in cells:
            yield cell_unit(cell, config, fingerprints[cell.dataset, cell.strategy]), "cell", (study_key, cell, slots)
