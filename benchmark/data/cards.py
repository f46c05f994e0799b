"""Dataset cards: one YAML file per dataset in ``datasets/``, parsed with a safe loader and
validated into a :class:`DatasetCard`. Errors name the file, the field and what was expected."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmark.paths import cards_dir as default_cards_dir
from benchmark.yamlfile import DuplicateKey, YamlInputError, did_you_mean, read_yaml
from benchmark.scale.schema import DEFAULT_RANKING_METRICS, DEFAULT_TASK, TASKS, task_metrics
from strategies.registry import Registry

SOURCE_KINDS = ("builtin", "hub", "local")
LOCAL_FORMATS = ("csv", "parquet", "json", "imagefolder", "arrow", "hdf5", "mmsa_pickle")  # the last two: benchmark/data/formats.py
SPLITS = ("train", "validation", "test")
# Modality names appear in metric names and in subset labels such as "image+text", so they are
# limited to letters, digits and underscores.
MODALITY_NAME = re.compile(r"[A-Za-z0-9_]+")
# Which test metric ranks the dataset's leaderboard (optional card field `ranking_metric`; its
# default depends on the task: DEFAULT_RANKING_METRICS).
DEFAULT_RANKING_METRIC = "accuracy"
REGRESSION_LOSSES = ("mse", "l1")  # card field `regression_loss` (regression only)
# Fields that only document the dataset: kept in ``DatasetCard.info``, they change no result
# (and so are not part of a result's identity, benchmark/run/identity.py).
DOCUMENTATION_FIELDS = ("origin", "licence", "size", "splits_note", "citation", "classes", "checked")
# Every top-level field a card may have; any other is refused, with the closest valid name.
CARD_FIELDS = ("name", "description", "source", "label", "modalities", "split", "task", "sign_accuracy",
               "ranking_metric", "positive_class", "regression_loss", "folds", *DOCUMENTATION_FIELDS)


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
    ranking_metric: str = DEFAULT_RANKING_METRIC  # a key of benchmark.scale.schema.RANKING_METRICS
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


def _require(mapping: dict, key: str, path: Path, where: str, kind: type | tuple[type, ...], expected: str) -> Any:
    if key not in mapping:
        raise CardError(path, f"{where}{key}", f"is missing; expected {expected}")
    value = mapping[key]
    if not isinstance(value, kind):
        raise CardError(path, f"{where}{key}", f"expected {expected}, got {type(value).__name__} {value!r}")
    return value


def load_card(path: str | Path) -> DatasetCard:
    """Parse and validate one dataset card."""
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
    if not isinstance(raw, dict):
        raise CardError(path, "(top level)", "expected a mapping of fields (name, source, label, modalities, ...)")
    for key in raw:
        if key not in CARD_FIELDS:
            raise CardError(path, str(key), f"unknown field{did_you_mean(key, CARD_FIELDS)}; the fields of a card: "
                                            f"{', '.join(CARD_FIELDS)}")

    name = _require(raw, "name", path, "", str, "a dataset name (string)")
    source = _require(raw, "source", path, "", dict, f"a mapping with one of {SOURCE_KINDS}")
    kinds = [k for k in SOURCE_KINDS if k in source]
    if len(kinds) != 1:
        raise CardError(path, "source", f"expected exactly one of {SOURCE_KINDS}, got {sorted(source)}")
    _validate_source(path, kinds[0], source)
    label = _require(raw, "label", path, "", str, "the name of the label column (string)")

    raw_modalities = raw.get("modalities")
    if isinstance(raw_modalities, list):
        names = [m.get("name") for m in raw_modalities if isinstance(m, dict)]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise CardError(path, "modalities", f"modality {duplicates[0]!r} is declared twice")
        raise CardError(path, "modalities", "expected a mapping of modality name -> {column, encoder}, got a list")
    modalities_raw = _require(raw, "modalities", path, "", dict, "a mapping of modality name -> {column, encoder}")
    if not modalities_raw:
        raise CardError(path, "modalities", "expected at least one modality")
    modalities = []
    columns_seen: dict[str, str] = {}
    for mod_name, spec in modalities_raw.items():
        if not isinstance(mod_name, str) or not MODALITY_NAME.fullmatch(mod_name):
            raise CardError(path, f"modalities.{mod_name}", f"modality name {mod_name!r} may contain only letters, "
                                                           "digits and underscores (e.g. 'image', 'text_2')")
        where = f"modalities.{mod_name}."
        if not isinstance(spec, dict):
            raise CardError(path, f"modalities.{mod_name}", "expected a mapping with 'column' and 'encoder'")
        if "columns" in spec and "column" not in spec:  # several columns, e.g. the tabular encoder
            columns = spec["columns"]
            if not (isinstance(columns, list) and columns and all(isinstance(c, str) for c in columns)):
                raise CardError(path, f"{where}columns", f"expected a non-empty list of column names, got {columns!r}")
            if len(set(columns)) != len(columns):
                raise CardError(path, f"{where}columns", f"a column is listed twice: {columns!r}")
            column = ",".join(columns)
        else:
            column = _require(spec, "column", path, where, str, "a column name (string)")
        encoder = _require(spec, "encoder", path, where, str, "an encoder name (see `fusebench encoders`)")
        key = f"{column}|{encoder}|{sorted((k, str(v)) for k, v in spec.items())}"
        if key in columns_seen:
            raise CardError(path, f"modalities.{mod_name}", f"modality declared twice (same as {columns_seen[key]!r})")
        columns_seen[key] = mod_name
        options = {k: v for k, v in spec.items() if k not in ("column", "encoder")}
        if "missing" in options and options["missing"] != "allowed":
            raise CardError(path, f"{where}missing", f"expected 'allowed' (rows whose file is missing count as absent "
                                                     f"for this modality), got {options['missing']!r}")
        modalities.append(ModalitySpec(str(mod_name), column, encoder, options))

    split = raw.get("split", {}) or {}
    if not isinstance(split, dict):
        raise CardError(path, "split", "expected a mapping such as {seed: 0, validation: 0.15, test: 0.15}")
    for key in ("validation", "test"):
        if key in split and not (isinstance(split[key], (int, float)) and 0 < split[key] < 1):
            raise CardError(path, f"split.{key}", f"expected a fraction between 0 and 1, got {split[key]!r}")
    if "seed" in split and not isinstance(split["seed"], int):
        raise CardError(path, "split.seed", f"expected an integer seed, got {split['seed']!r}")
    task_fields = _task_fields(path, raw)
    folds = raw.get("folds")
    if folds is not None and (not isinstance(folds, int) or isinstance(folds, bool) or folds < 2):
        raise CardError(path, "folds", f"expected an integer >= 2 (k-fold cross-validation), got {folds!r}")
    info = {k: raw[k] for k in DOCUMENTATION_FIELDS if k in raw}
    return DatasetCard(
        name=name, path=path, description=str(raw.get("description", "")), source=source, label=label,
        modalities=tuple(modalities), split=split, info=info, **task_fields, folds=folds,
    )


def _task_fields(path: Path, raw: dict) -> dict[str, Any]:
    """The card's task and what goes with it: task, sign_accuracy, ranking_metric (checked against
    the task's metrics), classes, positive_class, regression_loss."""
    task = raw.get("task", DEFAULT_TASK)
    if not isinstance(task, str) or task not in TASKS:
        raise CardError(path, "task", f"expected one of {list(TASKS)}, got {task!r}")
    sign_accuracy = raw.get("sign_accuracy", False)
    if not isinstance(sign_accuracy, bool):
        raise CardError(path, "sign_accuracy", f"expected true or false, got {sign_accuracy!r}")
    if sign_accuracy and task != "regression":
        raise CardError(path, "sign_accuracy", f"applies to task 'regression' only; this card's task is {task!r}")
    allowed = task_metrics(task, sign_accuracy)
    ranking_metric = raw.get("ranking_metric", DEFAULT_RANKING_METRICS[task])
    if not isinstance(ranking_metric, str) or ranking_metric not in allowed:
        raise CardError(path, "ranking_metric", f"expected one of {list(allowed)} for task {task!r} (the test metric "
                                                f"that ranks the leaderboard), got {ranking_metric!r}")
    classes = raw.get("classes")
    if isinstance(classes, list) or task == "multilabel" and classes is not None:
        if not (isinstance(classes, list) and classes and all(isinstance(c, (str, int)) and not isinstance(c, bool)
                                                              for c in classes)):
            raise CardError(path, "classes", f"expected a non-empty list of class names, got {classes!r}")
        classes = [str(c) for c in classes]
        if len(set(classes)) != len(classes):
            raise CardError(path, "classes", f"a class is listed twice: {classes!r}")
        classes = tuple(classes)
    else:
        classes = None  # free-text documentation of the classes
    positive_class = raw.get("positive_class")
    if positive_class is not None:
        if task != "binary":
            raise CardError(path, "positive_class", f"applies to task 'binary' only; this card's task is {task!r}")
        if not isinstance(positive_class, (str, int)) or isinstance(positive_class, bool):
            raise CardError(path, "positive_class", f"expected a class name or id, got {positive_class!r}")
        positive_class = str(positive_class)
    regression_loss = raw.get("regression_loss", "mse")
    if "regression_loss" in raw and task != "regression":
        raise CardError(path, "regression_loss", f"applies to task 'regression' only; this card's task is {task!r}")
    if regression_loss not in REGRESSION_LOSSES:
        raise CardError(path, "regression_loss", f"expected one of {list(REGRESSION_LOSSES)}, got {regression_loss!r}")
    return {"task": task, "sign_accuracy": sign_accuracy, "ranking_metric": ranking_metric, "classes": classes,
            "positive_class": positive_class, "regression_loss": regression_loss}


def _under_modalities(path: Path, line: int) -> bool:
    """Whether 1-based ``line`` of the card lies inside its top-level ``modalities`` block."""
    inside = False
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if text and not text[0].isspace() and not text.startswith("#"):
            inside = text.startswith("modalities:")
        if number == line:
            return inside and not text.startswith("modalities:")
    return False


def _validate_source(path: Path, kind: str, source: dict) -> None:
    if kind == "builtin":
        _require(source, "builtin", path, "source.", str, "the name of a built-in dataset preparer")
    elif kind == "hub":
        hub = _require(source, "hub", path, "source.", dict, "a mapping {id, revision}")
        _require(hub, "id", path, "source.hub.", str, "a Hugging Face hub dataset id")
        _require(hub, "revision", path, "source.hub.", str, "a pinned revision (commit sha or tag)")
    else:
        local = _require(source, "local", path, "source.", dict, "a mapping {format, data_files}")
        fmt = _require(local, "format", path, "source.local.", str, f"one of {LOCAL_FORMATS}")
        if fmt not in LOCAL_FORMATS:
            raise CardError(path, "source.local.format", f"expected one of {LOCAL_FORMATS}, got {fmt!r}")
        if "data_files" not in local and "data_dir" not in local:
            raise CardError(path, "source.local.data_files", "is missing; expected a path or {split: path}")


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
