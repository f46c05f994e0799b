"""The model of a dataset card (``datasets/*.yaml``): every field a card may have, what each takes,
and the checks between fields (a task's metrics, fields that apply to one task only). It validates;
benchmark/data/cards.py reads the file and builds the DatasetCard the rest of the code uses.

Unknown fields are refused at every level but a modality's, whose other keys are its encoder's
options (checked against the encoder elsewhere)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from benchmark.inputmodel import InputModel, checked_by, choice, count, expect, problem, required
from benchmark.vocabulary import DEFAULT_RANKING_METRICS, DEFAULT_TASK, TASKS, task_metrics
from benchmark.yamlfile import closest

SOURCE_KINDS = ("builtin", "hub", "local")
LOCAL_FORMATS = ("csv", "parquet", "json", "imagefolder", "arrow", "hdf5", "mmsa_pickle")  # the last two: benchmark/data/formats.py
# Modality names appear in metric names and in subset labels such as "image+text", so they are
# limited to letters, digits and underscores.
MODALITY_NAME = re.compile(r"[A-Za-z0-9_]+")
REGRESSION_LOSSES = ("mse", "l1")  # card field `regression_loss` (regression only)
# Fields that only document the dataset: kept in ``DatasetCard.info``, they change no result
# (and so are not part of a result's identity, benchmark/run/identity.py).
DOCUMENTATION_FIELDS = ("origin", "licence", "size", "splits_note", "citation", "classes", "checked")

Text = Annotated[str, Field(min_length=1)]
Fraction = Annotated[int | float, Field(gt=0, lt=1)]


class HubSource(InputModel):
    id: Annotated[Text, expect("a Hugging Face hub dataset id")] = required()
    revision: Annotated[Text, expect("a pinned revision (commit sha or tag)")] = required()
    kwargs: Annotated[dict[str, Any], expect("a mapping of keyword arguments for datasets.load_dataset")] = None


class LocalSource(InputModel):
    format: choice(LOCAL_FORMATS, "the file format") = required()
    data_files: Annotated[Text | dict[str, Text], expect("a path or {split: path}")] = None
    data_dir: Annotated[Text, expect("a folder (imagefolder, or arrow: written by save_to_disk)")] = None
    # Options of the hdf5 and mmsa_pickle formats, checked when the file is read (benchmark/data/formats.py).
    columns: Any = None
    ranges: Any = None
    replace_nonfinite: Any = None

    @model_validator(mode="after")
    def _files_named(self) -> "LocalSource":
        if self.data_files is None and self.data_dir is None:
            raise problem("is missing; expected a path or {split: path}", "data_files")
        return self


class Source(InputModel):
    builtin: Annotated[Text, expect("the name of a built-in dataset preparer")] = None
    hub: Annotated[HubSource, expect("a mapping {id, revision}")] = None
    local: Annotated[LocalSource, expect("a mapping {format, data_files}")] = None

    @classmethod
    def check_mapping(cls, data: dict) -> None:
        if len([kind for kind in SOURCE_KINDS if kind in data]) != 1:
            raise problem(f"expected exactly one of {SOURCE_KINDS}, got {sorted(data)}")


class Split(InputModel):
    seed: Annotated[int, expect("an integer seed")] = None
    validation: Annotated[Fraction, expect("a fraction between 0 and 1")] = None
    test: Annotated[Fraction, expect("a fraction between 0 and 1")] = None


def _missing_allowed(value: Any) -> Any:
    if value != "allowed":
        raise ValueError(f"expected 'allowed' (rows whose file is missing count as absent for this modality), "
                         f"got {value!r}")
    return value


class Modality(InputModel):
    # a modality's other keys are its encoder's options (size, patch, standardize, ...)
    model_config = ConfigDict(extra="allow")

    column: Annotated[str, expect("a column name (string)")] = None
    columns: Annotated[list[str], Field(min_length=1), expect("a non-empty list of column names")] = None
    encoder: Annotated[str, expect("an encoder name (see `fusebench encoders`)")] = required()
    missing: Annotated[Any, checked_by(_missing_allowed)] = None

    @classmethod
    def check_mapping(cls, data: dict) -> None:
        # A misspelt `column` or `encoder` would pass as an encoder option: name it, not the missing key.
        options = [str(key) for key in data if key not in cls.model_fields]
        for name in ("column", "encoder"):
            if name not in data and not (name == "column" and "columns" in data):
                hint = closest(name, options)
                if hint:
                    raise problem(f"unknown field (did you mean {name!r}?); a modality takes column (or columns), "
                                  "encoder, missing and its encoder's options", hint)
        if "column" not in data and "columns" not in data:
            raise problem("is missing; expected a column name (string), or several as columns: [a, b, ...]", "column")

    @field_validator("columns")
    @classmethod
    def _each_column_once(cls, columns: list[str] | None) -> list[str] | None:
        if columns is not None and len(set(columns)) != len(columns):
            raise problem(f"a column is listed twice: {columns!r}")
        return columns

    def spec(self) -> dict[str, Any]:
        """The modality's keys as the card gives them."""
        return {**{name: getattr(self, name) for name in self.model_fields_set}, **(self.model_extra or {})}

    def column_text(self) -> str:
        """The column, or the columns joined by commas (a tabular encoder reads several)."""
        return ",".join(self.columns) if "columns" in self.model_fields_set and self.column is None else self.column


class CardModel(InputModel):
    name: Annotated[Text, expect("a dataset name (string)")] = required()
    description: Any = None  # free text
    source: Annotated[Source, expect(f"a mapping with one of {SOURCE_KINDS}")] = required()
    label: Annotated[Text, expect("the name of the label column (string)")] = required()
    modalities: Annotated[dict[str, Modality], Field(min_length=1),
                          expect("a mapping of modality name -> {column, encoder} (at least one)")] = required()
    split: Annotated[Split | None, expect("a mapping such as {seed: 0, validation: 0.15, test: 0.15}")] = None
    task: choice(TASKS, "the kind of label") = DEFAULT_TASK
    sign_accuracy: Annotated[bool, expect("true or false")] = False
    ranking_metric: Any = None  # checked against the task's metrics below
    positive_class: Any = None
    regression_loss: Any = None
    folds: count(2, "k-fold cross-validation over the pooled splits", nullable=True) = None
    origin: Any = None
    licence: Any = None
    size: Any = None
    splits_note: Any = None
    citation: Any = None
    classes: Any = None  # a list of class names (multilabel: the names of the 0/1 vector), or free text
    checked: Any = None

    @field_validator("modalities", mode="before")
    @classmethod
    def _modality_names(cls, modalities: Any) -> Any:
        if isinstance(modalities, list):
            names = [m.get("name") for m in modalities if isinstance(m, dict)]
            duplicates = sorted({n for n in names if names.count(n) > 1}, key=str)
            if duplicates:
                raise problem(f"modality {duplicates[0]!r} is declared twice")
            raise problem("expected a mapping of modality name -> {column, encoder}, got a list")
        if isinstance(modalities, dict):
            for name in modalities:
                if not isinstance(name, str) or not MODALITY_NAME.fullmatch(name):
                    raise problem(f"modality name {name!r} may contain only letters, digits and underscores "
                                  "(e.g. 'image', 'text_2')", str(name))
        return modalities

    @field_validator("modalities")
    @classmethod
    def _each_modality_once(cls, modalities: dict[str, Modality]) -> dict[str, Modality]:
        seen: dict[str, str] = {}
        for name, modality in modalities.items():
            spec = modality.spec()
            key = f"{modality.column_text()}|{modality.encoder}|{sorted((k, str(v)) for k, v in spec.items())}"
            if key in seen:
                raise problem(f"modality declared twice (same as {seen[key]!r})", name)
            seen[key] = name
        return modalities

    @model_validator(mode="after")
    def _task_fields(self) -> "CardModel":
        """The fields that go with the task: sign_accuracy, ranking_metric (one of the task's
        metrics), classes, positive_class (binary), regression_loss (regression)."""
        task, given = self.task, self.model_fields_set
        if self.sign_accuracy and task != "regression":
            raise problem(f"applies to task 'regression' only; this card's task is {task!r}", "sign_accuracy")
        allowed = task_metrics(task, self.sign_accuracy)
        if "ranking_metric" not in given:
            self.ranking_metric = DEFAULT_RANKING_METRICS[task]
        elif not isinstance(self.ranking_metric, str) or self.ranking_metric not in allowed:
            raise problem(f"expected one of {list(allowed)} for task {task!r} (the test metric that ranks the "
                          f"leaderboard), got {self.ranking_metric!r}", "ranking_metric")
        classes = self.classes
        if isinstance(classes, list) or task == "multilabel" and classes is not None:
            if not (isinstance(classes, list) and classes and all(isinstance(c, (str, int)) and not isinstance(c, bool)
                                                                  for c in classes)):
                raise problem(f"expected a non-empty list of class names, got {classes!r}", "classes")
            names = [str(c) for c in classes]
            if len(set(names)) != len(names):
                raise problem(f"a class is listed twice: {names!r}", "classes")
        positive = self.positive_class
        if positive is not None:
            if task != "binary":
                raise problem(f"applies to task 'binary' only; this card's task is {task!r}", "positive_class")
            if not isinstance(positive, (str, int)) or isinstance(positive, bool):
                raise problem(f"expected a class name or id, got {positive!r}", "positive_class")
        if "regression_loss" in given:
            if task != "regression":
                raise problem(f"applies to task 'regression' only; this card's task is {task!r}", "regression_loss")
            if self.regression_loss not in REGRESSION_LOSSES:
                raise problem(f"expected one of {list(REGRESSION_LOSSES)}, got {self.regression_loss!r}",
                              "regression_loss")
        return self

    def class_names(self) -> tuple[str, ...] | None:
        """The `classes:` list as names, or None where it is absent or free-text documentation."""
        return tuple(str(c) for c in self.classes) if isinstance(self.classes, list) else None
