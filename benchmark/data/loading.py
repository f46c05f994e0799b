"""Load a dataset card's splits through Hugging Face ``datasets`` and check them."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.data.cards import SPLITS, DatasetCard
from benchmark.data.builtin import ensure_prepared
from benchmark.data.source_paths import resolve_source_path
from benchmark.data import formats
from benchmark.data.file_problems import unreadable_files_message
from benchmark.data.splits import stratified_split
from benchmark.quiet import is_verbose


class DataError(ValueError):
    """Bad data: the message names the dataset, split, column and row where possible."""


@dataclass
class LoadedDataset:
    card: DatasetCard
    splits: dict  # split name -> datasets.Dataset
    class_names: list[str]
    revision: str  # content fingerprint used in feature-cache keys


def load_splits(card: DatasetCard) -> LoadedDataset:
    """Return train/validation/test splits with integer labels 0..C-1."""
    import datasets as hf

    kind = card.source_kind
    if kind == "builtin":
        folder = ensure_prepared(card.source["builtin"])
        raw = hf.load_from_disk(str(folder))
        revision = f"builtin:{card.source['builtin']}"
    elif kind == "hub":
        raw, revision = _load_hub(card)
    else:
        raw, revision = _load_local(card)
    splits = _ensure_three_splits(card, raw)
    class_names = _encode_labels(card, splits)
    _check_columns(card, splits)
    fingerprints = ",".join(f"{name}={getattr(splits[name], '_fingerprint', '')}" for name in SPLITS)
    return LoadedDataset(card, splits, class_names, f"{revision}|{fingerprints}")


def _load_hub(card: DatasetCard):
    import datasets as hf

    hub = card.source["hub"]
    try:
        return hf.load_dataset(hub["id"], revision=hub["revision"], **hub.get("kwargs", {})), hub["revision"]
    except (ConnectionError, OSError, FileNotFoundError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
        raise DataError(
            f"dataset {card.name!r}: cannot load hub dataset {hub['id']!r} at revision {hub['revision']!r}"
            f"{' (HF_HUB_OFFLINE=1 is set)' if offline else ''}: {exc.__class__.__name__}: {exc}. "
            f"To use a local copy, change 'source' in {card.path} to "
            "'local: {format: parquet, data_files: {train: ..., validation: ..., test: ...}}' "
            "(or 'format: arrow, data_dir: <folder written by save_to_disk>')."
        ) from exc


def _load_local(card: DatasetCard):
    import datasets as hf
    from datasets.exceptions import DatasetGenerationError

    local = card.source["local"]
    fmt = local["format"]
    base = card.path.parent
    if fmt in formats.FORMATS:  # files that datasets cannot read (HDF5 arrays, MMSA feature pickles)
        try:
            return formats.load_format(card, fmt, local, lambda value: resolve_source_path(base, value))
        except formats.FormatError as exc:
            raise DataError(f"dataset {card.name!r}: {exc}") from None
    if fmt == "arrow":
        folder = resolve_source_path(base, local["data_dir"])
        return hf.load_from_disk(str(folder)), f"local:{folder}"
    data_files = local.get("data_files")
    if isinstance(data_files, dict):
        data_files = {split: str(resolve_source_path(base, f)) for split, f in data_files.items()}
    elif data_files is not None:
        data_files = str(resolve_source_path(base, data_files))
    kwargs = {}
    if fmt == "imagefolder":
        kwargs["data_dir"] = str(resolve_source_path(base, local["data_dir"])) if "data_dir" in local else None
    try:
        with _read_errors_unlogged():
            raw = hf.load_dataset(fmt, data_files=data_files, **{k: v for k, v in kwargs.items() if v})
    except FileNotFoundError as exc:
        raise DataError(f"dataset {card.name!r}: local files not found ({card.path}, field 'source.local'): {exc}") from exc
    except (DatasetGenerationError, ValueError, OSError) as exc:  # the cause is chained; name the file
        raise DataError(unreadable_files_message(card, fmt, data_files, exc)) from exc
    return raw, f"local:{data_files}"


@contextmanager
def _read_errors_unlogged():
    """``datasets`` logs "Failed to read file ..." (level ERROR) before it raises; the DataError
    raised instead names the file and what is wrong with it, so that line is kept for --verbose."""
    if is_verbose():
        yield
        return
    logger = logging.getLogger("datasets")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)




def _ensure_three_splits(card: DatasetCard, raw) -> dict:
    names = list(raw.keys())
    if all(s in names for s in SPLITS):
        splits = {s: raw[s] for s in SPLITS}
    elif names == ["train"] or len(names) == 1:
        full = raw[names[0]]
        if len(full) == 0:
            raise DataError(f"dataset {card.name!r}: split {names[0]!r} is empty")
        seed = int(card.split.get("seed", 0))
        # Stratified by class for class labels; a plain seeded split for multilabel and regression.
        stratify = card.label in full.column_names and card.task in ("multiclass", "binary")
        labels = np.array(full[card.label]) if stratify else np.zeros(len(full))
        if labels.dtype.kind not in "iub":  # strings: stratify by their index
            _, labels = np.unique(labels.astype(str), return_inverse=True)
        idx = stratified_split(labels, seed, float(card.split.get("validation", 0.15)), float(card.split.get("test", 0.15)))
        splits = {s: full.select(idx[s]) for s in SPLITS}
    else:
        raise DataError(
            f"dataset {card.name!r}: expected splits {list(SPLITS)} or a single split to divide, got {names}"
        )
    for name, split in splits.items():
        if len(split) == 0:
            raise DataError(f"dataset {card.name!r}: split {name!r} is empty")
    return splits


def _encode_labels(card: DatasetCard, splits: dict) -> list[str]:
    """Replace each split's label column by what the card's task trains on, and return the class
    names. multiclass: ids 0..C-1 of the training split's classes (strings, ints and ClassLabel are
    accepted); binary: 0/1 (the positive class is the card's ``positive_class``, else the second in
    sorted order); multilabel: a 0/1 vector per row (from a list of class names, or a fixed-length
    0/1 or bool vector named by the card's ``classes``); regression: a float (no class names)."""
    import datasets as hf

    train = splits["train"]
    if card.label not in train.column_names:
        raise DataError(
            f"dataset {card.name!r}, split 'train': label column {card.label!r} not found; "
            f"columns are {column_list(train.column_names, card.label)} (field 'label' in {card.path})"
        )
    if card.task == "regression":
        return _regression_labels(card, splits)
    if card.task == "multilabel":
        return _multilabel_labels(card, splits)
    feature = train.features[card.label]
    if isinstance(feature, hf.ClassLabel) and card.task == "multiclass":
        return _at_least_two(card, list(feature.names))
    if isinstance(feature, hf.ClassLabel):  # binary: class names instead of ids, then as below
        for name in splits:  # (a cast to string would give the ids as text, "0"/"1", not the names)
            names = [feature.int2str(int(v)) for v in splits[name][card.label]]
            _replace_labels(splits, name, card.label, names, hf.Value("string"))
    values_by_split = {}
    for name, split in splits.items():
        values = split[card.label]
        for row, v in enumerate(values):
            if isinstance(v, bool) and card.task == "binary":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, str, np.integer)):
                raise DataError(
                    f"dataset {card.name!r}, split {name!r}, column {card.label!r}, row {row}: label {v!r} has type "
                    f"{type(v).__name__}; expected an integer class id or a string class name"
                )
        values_by_split[name] = values
    classes = sorted({str(v) for v in values_by_split["train"]}, key=lambda s: (len(s), s) if s.lstrip("-").isdigit() else (0, s))
    classes = _binary_classes(card, classes) if card.task == "binary" else _at_least_two(card, classes)
    index = {c: i for i, c in enumerate(classes)}
    for name, values in values_by_split.items():
        unseen = sorted({str(v) for v in values} - set(index))
        if unseen:
            raise DataError(f"dataset {card.name!r}, split {name!r}, column {card.label!r}: classes {unseen[:5]} do not occur in train")
        # A new int64 column replaces the label (mapping into the same column would keep its string type).
        mapped = splits[name].map(lambda row: {"__fusebench_label": index[str(row[card.label])]}, desc=None)
        splits[name] = mapped.remove_columns(card.label).rename_column("__fusebench_label", card.label)
    return classes


def _at_least_two(card: DatasetCard, classes: list[str]) -> list[str]:
    """The classes of a multiclass card, refused when there is a single one (nothing to learn)."""
    if len(classes) < 2:
        raise DataError(f"dataset {card.name!r}, split 'train', column {card.label!r}: a single class "
                        f"({', '.join(map(repr, classes))}); classification needs at least 2 "
                        f"(field 'label' in {card.path})")
    return classes


def _binary_classes(card: DatasetCard, classes: list[str]) -> list[str]:
    """[negative, positive]: the positive class is the card's ``positive_class``, else the second."""
    if len(classes) != 2:
        raise DataError(f"dataset {card.name!r}, split 'train', column {card.label!r}: task 'binary' needs exactly 2 "
                        f"classes, found {len(classes)}: {classes[:5]}{' ...' if len(classes) > 5 else ''} "
                        f"(field 'task' in {card.path})")
    if card.positive_class is None:
        return classes
    if card.positive_class not in classes:
        raise DataError(f"dataset {card.name!r}: positive_class {card.positive_class!r} is not one of the classes "
                        f"{classes} of column {card.label!r} (field 'positive_class' in {card.path})")
    return [c for c in classes if c != card.positive_class] + [card.positive_class]


def _replace_labels(splits: dict, name: str, column: str, values: list, feature) -> None:
    """Split ``name``'s label column replaced by ``values`` of type ``feature``."""
    splits[name] = splits[name].remove_columns(column).add_column(column, values, feature=feature)


def _regression_labels(card: DatasetCard, splits: dict) -> list[str]:
    """Each label a finite number, stored as float32; no class names."""
    import datasets as hf

    for name, split in splits.items():
        values = split[card.label]
        for row, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
                raise DataError(f"dataset {card.name!r}, split {name!r}, column {card.label!r}, row {row}: label {v!r} "
                                f"is not a finite number; task 'regression' expects one number per row")
        _replace_labels(splits, name, card.label, [float(v) for v in values], hf.Value("float32"))
    return []


def _multilabel_labels(card: DatasetCard, splits: dict) -> list[str]:
    """Each row's labels as a 0/1 vector over the classes. A row holds a list of class names
    (classes: the card's ``classes``, else every name seen in train, sorted), or a 0/1 / bool
    vector of one fixed length (named by the card's ``classes``, else "0", "1", ...)."""
    import datasets as hf

    where = lambda name, row: f"dataset {card.name!r}, split {name!r}, column {card.label!r}, row {row}"  # noqa: E731
    rows_by_split = {name: split[card.label] for name, split in splits.items()}
    names_mode = None  # True: lists of class names; False: 0/1 vectors
    for name, rows in rows_by_split.items():
        for row, value in enumerate(rows):
            if not isinstance(value, (list, tuple, np.ndarray)):
                raise DataError(f"{where(name, row)}: label {value!r} has type {type(value).__name__}; task "
                                "'multilabel' expects a list of class names or a 0/1 vector per row")
            for item in value:
                is_name = isinstance(item, str)
                if names_mode is None:
                    names_mode = is_name
                if is_name != names_mode:
                    raise DataError(f"{where(name, row)}: label {list(value)!r} mixes class names and numbers; "
                                    "expected a list of class names or a 0/1 vector in every row")
                if not is_name and not (isinstance(item, (bool, int, float, np.integer, np.floating, np.bool_))
                                        and item in (0, 1)):
                    raise DataError(f"{where(name, row)}: vector entry {item!r} is not 0/1; expected a 0/1 (or "
                                    "bool) vector or a list of class names")
    if names_mode is None and card.classes is None:
        raise DataError(f"dataset {card.name!r}, column {card.label!r}: every row's label list is empty; "
                        f"expected class names in at least one row, or a 'classes' list in {card.path}")
    if names_mode is False:
        width = len(rows_by_split["train"][0])
        if card.classes is not None and len(card.classes) != width:
            raise DataError(f"dataset {card.name!r}, split 'train', column {card.label!r}, row 0: vector of length "
                            f"{width}, but the card's 'classes' lists {len(card.classes)} names ({card.path})")
        classes = list(card.classes) if card.classes is not None else [str(i) for i in range(width)]
        for name, rows in rows_by_split.items():
            for row, value in enumerate(rows):
                if len(value) != width:
                    raise DataError(f"{where(name, row)}: vector of length {len(value)}; expected {width} "
                                    "(the length of train's row 0)")
            _replace_labels(splits, name, card.label, [[int(bool(v)) for v in value] for value in rows],
                            hf.Sequence(hf.Value("int8")))
        return classes
    if card.classes is not None:
        classes = list(card.classes)
    else:
        classes = sorted({item for value in rows_by_split["train"] for item in value})
    index = {c: i for i, c in enumerate(classes)}
    for name, rows in rows_by_split.items():
        vectors = []
        for row, value in enumerate(rows):
            unknown = [item for item in value if item not in index]
            if unknown:
                known = "the card's 'classes'" if card.classes is not None else "train"
                raise DataError(f"{where(name, row)}: classes {unknown[:5]} do not occur in {known}")
            vector = [0] * len(classes)
            for item in value:
                vector[index[item]] = 1
            vectors.append(vector)
        _replace_labels(splits, name, card.label, vectors, hf.Sequence(hf.Value("int8")))
    return classes


# An error lists at most this many column names, then "... and N more" (a wide table has thousands).
MAX_LISTED_COLUMNS = 20


def column_list(names: list[str], close_to: str | None = None) -> str:
    """``names`` for an error message: the first MAX_LISTED_COLUMNS, then how many more, and the
    close matches of ``close_to`` (a misspelt column) wherever they are in the list."""
    import difflib

    shown = ", ".join(map(repr, names[:MAX_LISTED_COLUMNS]))
    if len(names) > MAX_LISTED_COLUMNS:
        shown += f", ... and {len(names) - MAX_LISTED_COLUMNS} more"
    close = difflib.get_close_matches(close_to, names, n=3) if close_to else []
    return f"[{shown}]" + (f"; did you mean {', '.join(map(repr, close))}?" if close else "")


def _check_columns(card: DatasetCard, splits: dict) -> None:
    for split_name, split in splits.items():
        for spec in card.modalities:
            field_name = "columns" if spec.options.get("columns") else "column"
            for column in spec.options.get("columns") or [spec.column]:
                if column not in split.column_names:
                    raise DataError(
                        f"dataset {card.name!r}, split {split_name!r}: column {column!r} (modality {spec.name!r}) "
                        f"not found; the {len(split.column_names)} columns are {column_list(split.column_names, column)} "
                        f"(field 'modalities.{spec.name}.{field_name}' in {card.path})"
                    )
