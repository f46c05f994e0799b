"""The Plan: the one description of a matrix, built once per command from its validated
configuration, its cards and the strategy registry. Everything that needs the matrix's id, cells,
studies, units or cell hashes reads it (the coordinator, each Ray worker, status, the estimate,
the CLI and the API, the perf commands); nothing re-derives them. A Ray worker process on another
machine builds its own Plan once from the matrix's configuration and checks that its matrix id
is the driver's.

The Plan is immutable: its sequences are tuples, its mappings read-only, its units frozen."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Callable, Mapping

from benchmark.data.cards import DatasetCard
from benchmark.features.card_encoders import check_all_encoders
from benchmark.run import planning
from benchmark.run.config import MatrixConfig, ProfileError, expand
from benchmark.run.dropout import Dropout, training_rate, unknown_modalities
from benchmark.run.finetune_axis import finetuned_inputs_fingerprint
from benchmark.run.identity import dataset_fingerprint, load_strategies
from benchmark.run.units import CellUnit, Study, TrialUnit, Unit
from benchmark.train.results import Cell
from benchmark.vocabulary import finetune_of


def _cell_key(cell: Cell) -> tuple:
    """What tells the cells of one plan apart (a Cell holds a dict, so it is no dict key itself)."""
    return cell.dataset, cell.variant, cell.dropout, cell.seed, cell.fold


@dataclass(frozen=True)
class Plan:
    """A matrix as it will run.

    ``config``: the validated configuration; ``matrix_id``: its id (benchmark/run/planning.py);
    ``cards``: dataset -> card; ``rates``: the training dropout rates in the one form cells and
    training hold (``dropout.training_rate``); ``cells``: every cell in run order;
    ``input_fingerprints``: (dataset, strategy) -> fingerprint of those cells' inputs, computed
    once (a fine-tuned variant's cells add their mode's, ``finetune_axis.finetuned_inputs_fingerprint``);
    ``studies``: the Optuna studies in run order; ``units``: the work-queue units in run order, each
    study's trial slots before its cells.

    The trial budget is enforced here: each study gets exactly ``trial_slots_per_study`` trial-slot
    units, and a slot's unit runs until one trial of the slot is final (benchmark/train/tuning.py,
    ``run_trial_slot``), so no study trains more budget trials than the profile's ``trials``
    however many workers run it, resume it or take over a killed worker's slot."""

    config: MatrixConfig
    matrix_id: str
    cards: Mapping[str, DatasetCard]
    rates: tuple[Dropout, ...]
    cells: tuple[Cell, ...]
    input_fingerprints: Mapping[tuple[str, str], str]
    studies: tuple[Study, ...]
    units: tuple[Unit, ...]
    not_applicable_pairs: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    _units_by_id: Mapping[str, Unit] = field(repr=False, compare=False)
    _studies_by_key: Mapping[str, Study] = field(repr=False, compare=False)
    _hashes: Mapping[tuple, str] = field(repr=False, compare=False)

    @classmethod
    def build(cls, config: MatrixConfig, where: Callable[[str], str] | None = None) -> "Plan":
        """The Plan of ``config``. Checks the configuration against its cards (each card's
        encoders; per-modality dropout rates name modalities every dataset has), the one place
        this is done; ``where(field)`` names the source of a bad value in the ProfileError (by
        default the profile's field; the CLI names its flag)."""
        where = where or (lambda name: f"profile {config.name!r}: field '{name}'")
        registry = load_strategies(config.plugins)
        cards = config.cards()  # names, globs and card paths (benchmark/run/card_files.py)
        check_all_encoders(cards)  # a card's encoder problems, before anything is registered
        problem = unknown_modalities(config.dropout_rates, cards)
        if problem:
            raise ProfileError(f"{where('dropout_rates')}: {problem}")
        strategies = expand(config.strategies, registry.names(), "strategy")
        rates = tuple(training_rate(entry) for entry in config.dropout_rates)
        cells = planning.plan_cells(config, cards, registry, strategies, rates)
        datasets = {name: dataset_fingerprint(card) for name, card in cards.items()}  # the data hashed once
        fingerprints = {(c.dataset, c.strategy): planning.input_fingerprint(config, cards[c.dataset], c.strategy,
                                                                           datasets[c.dataset]) for c in cells}
        studies, units, hashes = _studies_and_units(config, rates, cells, _by_mode(cells, cards, fingerprints))
        skipped = planning.not_applicable(config, cards, registry, strategies)
        return cls(config=config, matrix_id=planning.matrix_id(config, cards, strategies, datasets),
                   cards=MappingProxyType(dict(cards)), rates=rates, cells=tuple(cells),
                   input_fingerprints=MappingProxyType(fingerprints), studies=studies, units=units,
                   not_applicable_pairs=tuple((d, tuple(why.items())) for d, why in skipped.items()),
                   _units_by_id=MappingProxyType({u.id: u for u in units}),
                   _studies_by_key=MappingProxyType({s.key: s for s in studies}),
                   _hashes=MappingProxyType(hashes))

    @property
    def trial_slots_per_study(self) -> int:
        """The trial budget of each study: its number of trial-slot units (the profile's ``trials``)."""
        return self.config.trials

    @property
    def trial_units(self) -> tuple[TrialUnit, ...]:
        return tuple(u for u in self.units if isinstance(u, TrialUnit))

    @property
    def cell_units(self) -> tuple[CellUnit, ...]:
        return tuple(u for u in self.units if isinstance(u, CellUnit))

    @property
    def not_applicable(self) -> dict[str, dict[str, str]]:
        """Dataset -> {strategy: why}: the strategies the matrix names that state a limit on how many
        modalities they take which the dataset falls outside of (they have no cells; the report
        lists them). A new dict on each call."""
        return {dataset: dict(why) for dataset, why in self.not_applicable_pairs}

    def unit(self, unit_id: str) -> Unit:
        try:
            return self._units_by_id[unit_id]
        except KeyError:
            raise KeyError(f"unit {unit_id!r} is not a unit of matrix {self.matrix_id}") from None

    def study(self, key: str) -> Study:
        try:
            return self._studies_by_key[key]
        except KeyError:
            raise KeyError(f"study {key!r} is not a study of matrix {self.matrix_id}") from None

    def cells_of(self, study_key: str) -> tuple[Cell, ...]:
        return self.study(study_key).cells

    @staticmethod
    def cell_unit_id(cell_hash: str) -> str:
        """The work-queue unit of the cell with this configuration hash (its MLflow tag)."""
        return planning.cell_unit_id(cell_hash)

    def cell_hash(self, cell: Cell) -> str:
        """The configuration hash of a cell of this plan (its MLflow tag)."""
        try:
            return self._hashes[_cell_key(cell)]
        except KeyError:
            raise KeyError(f"{cell.label()} is not a cell of matrix {self.matrix_id}") from None


def _by_mode(cells: list[Cell], cards, fingerprints: dict[tuple[str, str], str]) -> dict[tuple[str, str, str], str]:
    """(dataset, strategy, fine-tuning mode) -> the inputs fingerprint of those cells: the frozen
    one as it is, a fine-tuned one combined with its mode's (finetune_axis.finetuned_inputs_fingerprint)."""
    out: dict[tuple[str, str, str], str] = {}
    for cell in cells:
        key = (cell.dataset, cell.strategy, finetune_of(cell.fixed_hparams))
        if key not in out:
            out[key] = finetuned_inputs_fingerprint(fingerprints[key[:2]], cards[cell.dataset], key[2])
    return out


def _studies_and_units(config: MatrixConfig, rates: tuple[Dropout, ...], cells: list[Cell],
                       fingerprints: dict[tuple[str, str, str], str]):
    """-> (studies, units in run order, cell key -> cell hash): each study's trial slots, slot k
    waiting for the slots before it, then its cells, waiting for every slot. ``fingerprints``:
    (dataset, strategy, fine-tuning mode) -> the inputs fingerprint of those cells."""
    members: dict[str, list[Cell]] = {}
    hashes: dict[tuple, str] = {}
    for cell in cells:
        fingerprint = fingerprints[cell.dataset, cell.strategy, finetune_of(cell.fixed_hparams)]
        tuned_at = planning.tuning_rate(config, rates, cell.dropout)
        members.setdefault(planning.study_key(cell, config, fingerprint, tuned_at), []).append(cell)
        hashes[_cell_key(cell)] = planning.cell_hash(cell, config, fingerprint, tuned_at)
    studies: list[Study] = []
    units: list[Unit] = []
    for key, study_cells in members.items():
        slots = tuple(planning.trial_unit_id(key, k) for k in range(config.trials))
        tuning_cell = replace(study_cells[0], dropout=planning.tuning_rate(config, rates, study_cells[0].dropout))
        studies.append(Study(key, tuning_cell, tuple(study_cells), slots))
        units += [TrialUnit(unit, key, tuning_cell, k, slots[:k]) for k, unit in enumerate(slots)]
        units += [CellUnit(planning.cell_unit_id(hashes[_cell_key(c)]), key, c, hashes[_cell_key(c)], slots)
                  for c in study_cells]
    return tuple(studies), tuple(units), hashes
