"""Load a dataset card's splits through Hugging Face ``datasets`` and check them."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.data.cards import SPLITS, DatasetCard
from benchmark.data.builtin import ensure_prepared
from benchmark.data.splits import stratified_split


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

    local = card.source["local"]
    fmt = local["format"]
    base = card.path.parent
    if fmt == "arrow":
        folder = _resolve(base, local["data_dir"])
        return hf.load_from_disk(str(folder)), f"local:{folder}"
    data_files = local.get("data_files")
    if isinstance(data_files, dict):
        data_files = {split: str(_resolve(base, f)) for split, f in data_files.items()}
    elif data_files is not None:
        data_files = str(_resolve(base, data_files))
    kwargs = {}
    if fmt == "imagefolder":
        kwargs["data_dir"] = str(_resolve(base, local["data_dir"])) if "data_dir" in local else None
    try:
        raw = hf.load_dataset(fmt, data_files=data_files, **{k: v for k, v in kwargs.items() if v})
    except FileNotFoundError as exc:
        raise DataError(f"dataset {card.name!r}: local files not found ({card.path}, field 'source.local'): {exc}") from exc
    except ValueError as exc:
        empty = re.search(r'Instruction "(\w+)" corresponds to no data', str(exc))
        if empty:
            raise DataError(f"dataset {card.name!r}: split {empty.group(1)!r} is empty "
                            f"({card.path}, field 'source.local.data_files')") from exc
        raise DataError(f"dataset {card.name!r}: cannot read the local files named in {card.path} "
                        f"(field 'source.local'): {exc.__class__.__name__}: {exc}") from exc
    return raw, f"local:{data_files}"


def _resolve(base: Path, value: str) -> Path:
    path = Path(os.path.expandvars(os.path.expanduser(value)))
    return path if path.is_absolute() else (base / path).resolve()


def _ensure_three_splits(card: DatasetCard, raw) -> dict:
    names = list(raw.keys())
    if all(s in names for s in SPLITS):
        splits = {s: raw[s] for s in SPLITS}
    elif names == ["train"] or len(names) == 1:
        full = raw[names[0]]
        if len(full) == 0:
            raise DataError(f"dataset {card.name!r}: split {names[0]!r} is empty")
        seed = int(card.split.get("seed", 0))
        labels = np.array(full[card.label]) if card.label in full.column_names else np.zeros(len(full))
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
    """Map labels to 0..C-1 using the training split's classes. Strings, ints and ClassLabel are accepted."""
    import datasets as hf

    train = splits["train"]
    if card.label not in train.column_names:
        raise DataError(
            f"dataset {card.name!r}, split 'train': label column {card.label!r} not found; "
            f"columns are {train.column_names} (field 'label' in {card.path})"
        )
    feature = train.features[card.label]
    if isinstance(feature, hf.ClassLabel):
        return list(feature.names)
    values_by_split = {}
    for name, split in splits.items():
        values = split[card.label]
        for row, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, (int, str, np.integer)):
                raise DataError(
                    f"dataset {card.name!r}, split {name!r}, column {card.label!r}, row {row}: label {v!r} has type "
                    f"{type(v).__name__}; expected an integer class id or a string class name"
                )
        values_by_split[name] = values
    classes = sorted({str(v) for v in values_by_split["train"]}, key=lambda s: (len(s), s) if s.lstrip("-").isdigit() else (0, s))
    index = {c: i for i, c in enumerate(classes)}
    for name, values in values_by_split.items():
        unseen = sorted({str(v) for v in values} - set(index))
        if unseen:
            raise DataError(f"dataset {card.name!r}, split {name!r}, column {card.label!r}: classes {unseen[:5]} do not occur in train")
        # A new int64 column replaces the label (mapping into the same column would keep its string type).
        mapped = splits[name].map(lambda row: {"__fusebench_label": index[str(row[card.label])]}, desc=None)
        splits[name] = mapped.remove_columns(card.label).rename_column("__fusebench_label", card.label)
    return classes


def _check_columns(card: DatasetCard, splits: dict) -> None:
    for split_name, split in splits.items():
        for spec in card.modalities:
            columns = spec.options.get("columns") or [spec.column]
            for column in columns:
                if column not in split.column_names:
                    raise DataError(
                        f"dataset {card.name!r}, split {split_name!r}: column {column!r} (modality {spec.name!r}) "
                        f"not found; columns are {split.column_names} (field 'modalities.{spec.name}.column' in {card.path})"
                    )
