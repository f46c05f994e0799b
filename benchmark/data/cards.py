"""Dataset cards: one YAML file per dataset in ``datasets/``, read with the safe loader
(benchmark/yamlfile.py), validated by the card model (benchmark/data/card_model.py) and built into a
:class:`DatasetCard`. Errors name the file, the field and what was expected."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmark.data.card_model import DOCUMENTATION_FIELDS, SOURCE_KINDS, CardModel
from benchmark.inputmodel import InputProblem, validate
from benchmark.paths import cards_dir as default_cards_dir
from benchmark.vocabulary import DEFAULT_TASK
from benchmark.yamlfile import DuplicateKey, YamlInputError, read_yaml
from strategies.registry import Registry

SPLITS = ("train", "validation", "test")
# Which test metric ranks the dataset's leaderboard (optional card field `ranking_metric`; its
# default depends on the task: DEFAULT_RANKING_METRICS).
DEFAULT_RANKING_METRIC = "accuracy"


class CardError(ValueError):
    """A dataset card is invalid. The message names the file and the field."""

    def __init__(self, path: Path | str, field_name: str, problem: str) -> None:
        self.path, self.field_name, self.problem = str(path), field_name, problem
        super().__init__(f"{path}: field '{field_name}': {problem}")


@dataclass(frozen=True)
class ModalitySpec:
    name: str
    column: str
    encoder: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetCard:
    name: str
    path: Path
    description: str
    source: dict[str, Any]
    label: str
    modalities: tuple[ModalitySpec, ...]
    split: dict[str, Any]
    info: dict[str, Any]
    ranking_metric: str = DEFAULT_RANKING_METRIC  # a key of benchmark.vocabulary.RANKING_METRICS
    task: str = DEFAULT_TASK  # multiclass | binary | multilabel | regression
    sign_accuracy: bool = False  # regression: also score the sign of the prediction (MOSI acc-2)
    classes: tuple[str, ...] | None = None  # optional `classes:` list (names of a multilabel 0/1 vector)
    positive_class: str | None = None  # binary: the class that is 1 (default: the second in sorted order)
    regression_loss: str = "mse"  # regression: "mse" or "l1"
    folds: int | None = None  # k-fold cross-validation over the pooled splits instead of one fixed split

    @property
    def source_kind(self) -> str:
        return next(kind for kind in SOURCE_KINDS if kind in self.source)

    @property
    def modality_names(self) -> list[str]:
        return sorted(m.name for m in self.modalities)

    def modality(self, name: str) -> ModalitySpec:
        return next(m for m in self.modalities if m.name == name)


def load_card(path: str | Path) -> DatasetCard:
    """Parse and validate one dataset card (benchmark/data/card_model.py checks it)."""
    path = Path(path)
    try:
        raw = read_yaml(path)
    except DuplicateKey as exc:
        where = "modalities" if _under_modalities(path, exc.line) else "(yaml)"
        problem = (f"modality {exc.key!r} is declared twice (line {exc.line})" if where == "modalities"
                   else f"key {exc.key!r} appears twice (line {exc.line})")
        raise CardError(path, where, problem) from None
    except FileNotFoundError:
        raise CardError(path, "(file)", "file does not exist") from None
    except YamlInputError as exc:
        raise CardError(path, "(yaml)", str(exc)) from None
    except yaml.YAMLError as exc:
        raise CardError(path, "(yaml)", f"is not valid YAML: {exc}") from None
    try:
        card = validate(CardModel, raw)
    except InputProblem as exc:
        raise CardError(path, exc.field or "(top level)", exc.problem) from None
    # The DatasetCard holds the mappings as written (its content is the card's identity,
    # benchmark/run/identity.py): the model only says they are valid.
    modalities = tuple(
        ModalitySpec(name, spec.column_text(), spec.encoder,
                     {k: v for k, v in raw["modalities"][name].items() if k not in ("column", "encoder")})
        for name, spec in card.modalities.items())
    return DatasetCard(
        name=card.name, path=path, description=str(raw.get("description", "")), source=raw["source"],
        label=card.label, modalities=modalities, split=raw.get("split") or {},
        info={k: raw[k] for k in DOCUMENTATION_FIELDS if k in raw}, ranking_metric=card.ranking_metric,
        task=card.task, sign_accuracy=card.sign_accuracy, classes=card.class_names(),
        positive_class=None if card.positive_class is None else str(card.positive_class),
        regression_loss=raw.get("regression_loss", "mse"), folds=card.folds,
    )


def _under_modalities(path: Path, line: int) -> bool:
    """Whether 1-based ``line`` of the card lies inside its top-level ``modalities`` block."""
    inside = False
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if text and not text[0].isspace() and not text.startswith("#"):
            inside = text.startswith("modalities:")
        if number == line:
            return inside and not text.startswith("modalities:")
    return False


def card_paths(cards_dir: Path | None = None) -> list[Path]:
    cards_dir = cards_dir or default_cards_dir()
    return sorted(cards_dir.glob("*.yaml")) + sorted(cards_dir.glob("*.yml"))


def load_all_cards(cards_dir: Path | None = None) -> dict[str, DatasetCard]:
    cards: dict[str, DatasetCard] = {}
    for path in card_paths(cards_dir):
        card = load_card(path)
        if card.name in cards:
            raise CardError(path, "name", f"dataset name {card.name!r} is already used by {cards[card.name].path}")
        cards[card.name] = card
    return cards


def find_card(name_or_path: str, cards_dir: Path | None = None) -> DatasetCard:
    """Look a card up by dataset name, or load it from a YAML path."""
    if name_or_path.endswith((".yaml", ".yml")) or Path(name_or_path).is_file():
        return load_card(name_or_path)
    registry: Registry[DatasetCard] = Registry("dataset")
    for card_name, card in load_all_cards(cards_dir).items():
        registry.add(card_name, card)
    return registry.get(name_or_path)
