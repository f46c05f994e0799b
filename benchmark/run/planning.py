"""The building blocks of a matrix's Plan (benchmark/run/plan.py): its cells (strategies x datasets x
training dropout rates x seeds), the strategies that do not apply, the configuration hash of a
cell, the Optuna study it belongs to, the work-queue unit ids and the matrix id. Pure functions of
the configuration, the cards and the registry: nothing here reads a card, hashes data, trains or
records anything, and nothing but the Plan (and tests) calls them.

A cell's hash, its study name and the matrix id include the fingerprint of the cell's inputs
(card content, encoder versions, strategy code and search space, protocol version;
benchmark/run/identity.py), so a result is never reused once one of them changed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

from benchmark.run.card_files import dataset_names
from benchmark.run.config import MatrixConfig
from benchmark.run.dropout import Dropout
from benchmark.run.folds import fold_count, folded_fingerprint, with_folds
from benchmark.run.identity import cell_fingerprint, matrix_inputs_fingerprint
from benchmark.run.finetune_axis import finetune_fingerprint, finetune_modes, finetune_variants
from benchmark.run.missing_axis import technique_variants
from benchmark.train.results import Cell
from benchmark.vocabulary import dropout_label


def _pairs(config: MatrixConfig, cards: dict, registry, strategies: list[str]):
    """(dataset, its card, strategy, the strategy's class, why the strategy does not apply to the
    dataset or None) for every dataset x strategy the matrix names, in run order: the one product
    that ``plan_cells`` and ``not_applicable`` both read."""
    for dataset, card in cards.items():
        for strategy in strategies:
            cls = registry.get(strategy)
            yield dataset, card, strategy, cls, _not_applicable_reason(cls, dataset, len(card.modality_names))


def _not_applicable_reason(cls, dataset: str, count: int) -> str | None:
    """Why a strategy class does not apply to a dataset of ``count`` modalities (its stated
    ``min_modalities`` / ``max_modalities``), or None. Unimodal baselines apply to any card."""
    if cls.family == "unimodal" or not outside_modality_limit(cls, count):
        return None
    limit = f"{cls.min_modalities} to {cls.max_modalities or 'any number of'}"
    return f"takes {limit} modalities; `{dataset}` has {count}"


def outside_modality_limit(cls, count: int) -> bool:
    """Whether a strategy class states it cannot take ``count`` modalities (``min_modalities`` /
    ``max_modalities``)."""
    return count < cls.min_modalities or bool(cls.max_modalities and count > cls.max_modalities)


def plan_cells(config: MatrixConfig, cards: dict, registry, strategies: list[str],
               rates: tuple[Dropout, ...]) -> list[Cell]:
    """Every cell of the matrix, in run order: ``strategies`` (the matrix's, expanded) on each card
    of ``cards`` (dataset -> card) at each training rate of ``rates`` (the matrix's dropout rates in
    the one form cells hold, ``dropout.training_rate``). Unimodal baselines expand to one per
    modality; strategies that do not apply (``not_applicable``) are left out."""
    cells = []
    for dataset, card, strategy, cls, not_applicable_because in _pairs(config, cards, registry, strategies):
        if not_applicable_because:
            continue  # the strategy states it cannot take this many modalities (not_applicable lists it)
        # one variant per fine-tuning mode: "concat", "concat@last_block" (finetune_axis.py)
        modes = finetune_modes(config.finetune, card)
        if cls.family == "unimodal":
            variants = [v for m in card.modality_names
                        for v in finetune_variants(f"{strategy}[{m}]", {"modality": m}, modes)]
        else:  # and per missing-input technique: "concat@learned", "concat@last_block@learned" (missing_axis.py)
            variants = [v for base in finetune_variants(strategy, {}, modes)
                        for v in technique_variants(*base, config.missing_inputs)]
        # Unimodal baselines stay "zero" only: they read one modality, so a learned stand-in for it
        # would be a constant input (their learned prior logits already cover its absence).
        for variant, fixed in variants:
            for rate in rates:
                for seed in config.seeds:
                    cells.append(Cell(dataset, strategy, variant, rate, int(seed), fixed))
    return with_folds(config, cards, cells)  # k-fold datasets: a cell per fold and seed (benchmark/run/folds.py)


def not_applicable(config: MatrixConfig, cards: dict, registry, strategies: list[str]) -> dict[str, dict[str, str]]:
    """Dataset -> {strategy: why}: the strategies the matrix asks for that state a limit on how many
    modalities they take which the dataset's card falls outside of (``plan_cells`` skips them). The
    report lists them as not applicable instead of leaving them silently missing."""
    skipped: dict[str, dict[str, str]] = {}
    for dataset, _, strategy, _, why in _pairs(config, cards, registry, strategies):
        if why:
            skipped.setdefault(dataset, {})[strategy] = why
    return skipped


def budget_tag(config: MatrixConfig) -> str:
    """The training budget in study names and cell hashes: trial slots per study, epoch cap, batch
    size, the early-stopping rule (longest wait, its ratio to the best epoch, first epoch it may
    fire), the token budget and the tuning draw (a study tuned under another budget is never continued)."""
    tokens = "all" if config.max_tokens is None else config.max_tokens
    draw = f"-d{config.tuning_draw}" if config.tuning_draw else ""  # another draw of tuning luck (seeds.py)
    return (f"t{config.trials}-e{config.epochs}-b{config.batch_size}-p{config.patience}"
            f"r{config.patience_ratio:g}m{config.min_epochs}-k{tokens}{draw}")


def tuning_rate(config: MatrixConfig, rates: tuple[Dropout, ...], rate: Dropout) -> Dropout:
    """The training rate at which the study of a cell trained at ``rate`` tunes: the cell's own
    under ``tuning: per_rate``; under ``shared``, the middle of the matrix's ``rates`` as listed
    (0.3 of 0, 0.3, 0.6), so one study serves every rate."""
    return rate if config.tuning == "per_rate" else rates[len(rates) // 2]


def input_fingerprint(config: MatrixConfig, card, strategy: str, dataset_fingerprint: str) -> str:
    """Fingerprint of the inputs of the cells of ``strategy`` on ``card`` (identity.cell_fingerprint),
    with the dataset's number of folds; ``dataset_fingerprint``: identity.dataset_fingerprint(card)."""
    return folded_fingerprint(cell_fingerprint(card, strategy, dataset_fingerprint), fold_count(config, card))


def cell_hash(cell: Cell, config: MatrixConfig, fingerprint: str, tuned_at: Dropout) -> str:
    """The cell's configuration hash (its MLflow tag and work-queue unit): the cell, the budget,
    ``fingerprint`` (of its inputs, ``input_fingerprint``) and ``tuned_at`` (``tuning_rate``)."""
    # "tuned_at": the rate whose study chose the hyperparameters: a cell retrained from another
    # rate's study is another result than one tuned at its own rate.
    hashed = {**asdict(cell), "budget": budget_tag(config), "inputs": fingerprint, "tuned_at": dropout_label(tuned_at)}
    if cell.fold is None:
        del hashed["fold"]  # a cell without k-fold keeps the hash it had before the field
    return hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:16]


def study_key(cell: Cell, config: MatrixConfig, fingerprint: str, tuned_at: Dropout) -> str:
    """The Optuna study of a cell (one per dataset, variant, fold, tuning rate and inputs
    fingerprint: under shared tuning the cells of every training rate share one)."""
    return cell.study_name(budget_tag(config), fingerprint, tuned_at)


def trial_unit_id(study: str, slot: int) -> str:
    return f"trial:{study}#{slot}"


def cell_unit_id(hash_: str) -> str:
    """The work-queue unit of the cell with this configuration hash (the MLflow tag)."""
    return f"cell:{hash_}"


def matrix_id(config: MatrixConfig, cards: dict, strategies: list[str], dataset_fingerprints: dict[str, str]) -> str:
    """Stable id of the matrix (everything that changes its results): the configuration but the
    device, whether seeds are stacked and where the card files lie (how the work runs, not what it
    is), and the fingerprint of its cells' inputs (cards and their data, encoder versions, strategy
    code, protocol version; benchmark/run/identity.py), the same on every machine.
    ``dataset_fingerprints``: dataset -> identity.dataset_fingerprint of its card."""
    hashed = {k: v for k, v in asdict(config).items() if k not in ("device", "stack_seeds", "card_files")}
    if config.amp == "off":
        del hashed["amp"]  # the same id as before the field existed
    if tuple(config.missing_inputs) == ("zero",):
        del hashed["missing_inputs"]  # likewise
    if tuple(config.finetune) == ("frozen",):
        del hashed["finetune"]  # likewise
    else:  # what the fine-tuned cells cache and the fine-tuning code (finetune_axis.finetune_fingerprint)
        hashed["finetune_inputs"] = {name: {mode: finetune_fingerprint(card, mode) for mode in config.finetune}
                                     for name, card in sorted(cards.items())}
    if config.folds is None:
        del hashed["folds"]  # likewise
    if config.tuning_draw == 0:
        del hashed["tuning_draw"]  # likewise
    hashed["datasets"] = dataset_names(config.datasets, cards)  # a card's name, never its path
    hashed["inputs"] = matrix_inputs_fingerprint(list(cards.values()), strategies, dataset_fingerprints)
    return f"{config.name}-{hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:10]}"
