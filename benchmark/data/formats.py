"""Local file formats that Hugging Face ``datasets`` cannot read, turned into its splits.

- ``hdf5``: one HDF5 file of arrays with rows along the first axis and the splits as index
  ranges, e.g. MultiBench's ``multimodal_imdb.hdf5`` (MM-IMDb). The card names the columns
  (column -> HDF5 dataset) and the ranges (``{train: [0, 15552], ...}``).
- ``mmsa_pickle``: the pre-extracted feature pickles that MMSA ships for CMU-MOSI / MOSEI / SIMS
  (``aligned_50.pkl``, ``unaligned_50.pkl``): a dict ``{train, valid, test}`` of dicts of
  arrays. Read with a restricted unpickler that accepts only numpy arrays, dtypes and builtin
  values, never arbitrary objects.

Arrays become Arrow list columns: ``(N, D)`` -> one vector of D numbers per row; ``(N, T, D)``
-> one ``T x D`` array per row (trimmed to its recorded length where the file records one);
``(N,)`` -> one number or string per row. The revision is a hash of the values read (and of the
format options), so a moved file keeps its feature cache and a changed one does not."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmark.data.cards import SPLITS, CardError, DatasetCard

FORMATS = ("hdf5", "mmsa_pickle")
# MMSA's split names -> fusebench's.
MMSA_SPLITS = {"train": "train", "valid": "validation", "test": "test"}
# MMSA keys that are not features: BERT token ids / attention mask / segment ids, (N, 3, T),
# for fine-tuning BERT inside the model. fusebench uses the mask to trim the text features.
MMSA_TOKEN_IDS = "text_bert"


class FormatError(ValueError):
    """The file's content does not fit its format; the loader adds the dataset's name."""


def load_format(card: DatasetCard, fmt: str, local: dict, resolve: Callable[[str], Path]) -> tuple[dict, str]:
    """Read ``source.local`` of ``card`` in ``fmt``: ({split: datasets.Dataset}, revision)."""
    path = _single_file(card, fmt, local, resolve)
    if fmt == "hdf5":
        columns, digest = _read_hdf5(card, path, local)
    else:
        columns, digest = _read_mmsa(card, path, local)
    return {split: _to_dataset(cols, f"{digest[:32]}-{split}") for split, cols in columns.items()}, f"{fmt}:{digest}"


def _single_file(card: DatasetCard, fmt: str, local: dict, resolve) -> Path:
    data_files = local.get("data_files")
    if not isinstance(data_files, str):
        raise CardError(card.path, "source.local.data_files",
                        f"format {fmt!r} reads one file; expected its path (string), got {data_files!r}")
    path = resolve(data_files)
    if not path.is_file():
        origin = card.info.get("origin")
        where = f" Where to get it (the card's 'origin'): {' '.join(str(origin).split())}." if origin else ""
        raise FormatError(
            f"file {path} not found (field 'source.local.data_files' in {card.path}).{where} To read a copy "
            f"elsewhere, set in the card source: {{local: {{format: {fmt}, data_files: /path/to/{Path(data_files).name}"
            f"{', ...' if len(local) > 2 else ''}}}}} (a relative path is resolved against the card's folder)."
        )
    return path


# --------------------------------------------------------------------------------------- hdf5


def _read_hdf5(card: DatasetCard, path: Path, local: dict) -> tuple[dict, str]:
    import h5py

    names = _hdf5_columns(card, local)
    ranges = _hdf5_ranges(card, local)
    hasher = hashlib.sha256(json.dumps({"columns": names, "ranges": ranges}, sort_keys=True).encode())
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(f"{path} is not a readable HDF5 file ({exc})") from None
    splits: dict[str, dict[str, Any]] = {s: {} for s in SPLITS}
    with handle:
        for column, name in names.items():
            if name not in handle or not isinstance(handle[name], h5py.Dataset):
                available = sorted(k for k in handle.keys() if isinstance(handle[k], h5py.Dataset))
                raise CardError(card.path, f"source.local.columns.{column}",
                                f"HDF5 dataset {name!r} not found in {path}; it has {_listed(available)}")
            data = handle[name]
            if data.ndim > 3:
                raise CardError(card.path, f"source.local.columns.{column}",
                                f"HDF5 dataset {name!r} has shape {data.shape}; expected (N,), (N, D) or (N, T, D) "
                                "(per row: a value, a vector, or a T x D array)")
            rows = data.shape[0]
            for split, (start, stop) in ranges.items():
                if stop > rows:
                    raise CardError(card.path, f"source.local.ranges.{split}",
                                    f"range [{start}, {stop}) ends past the {rows} rows of HDF5 dataset {name!r}")
            if column == card.label:
                _check_target_names(card, data, name)
            for split, (start, stop) in ranges.items():
                values = data[start:stop]
                if values.dtype.kind == "S":  # fixed-width byte strings, e.g. imdb_ids (S7)
                    values = np.array([v.decode("utf-8") for v in values], dtype=object)
                elif values.dtype.kind == "O" and len(values) and isinstance(values[0], bytes):
                    values = np.array([v.decode("utf-8") for v in values], dtype=object)
                _hash_array(hasher, f"{split}/{column}", values)
                splits[split][column] = values
    return splits, hasher.hexdigest()


def _hdf5_columns(card: DatasetCard, local: dict) -> dict[str, str]:
    columns = local.get("columns")
    if isinstance(columns, list) and columns and all(isinstance(c, str) for c in columns):
        columns = {c: c for c in columns}
    if not (isinstance(columns, dict) and columns
            and all(isinstance(k, str) and isinstance(v, str) for k, v in columns.items())):
        raise CardError(card.path, "source.local.columns",
                        "expected a mapping of column name -> HDF5 dataset name (e.g. {text: features, "
                        f"genres: genres}}), or a list of HDF5 dataset names; got {columns!r}")
    return dict(columns)


def _hdf5_ranges(card: DatasetCard, local: dict) -> dict[str, tuple[int, int]]:
    raw = local.get("ranges")
    expected = "a mapping {train: [start, stop], validation: [start, stop], test: [start, stop]} of row index ranges"
    if not isinstance(raw, dict) or sorted(raw) != sorted(SPLITS):
        raise CardError(card.path, "source.local.ranges", f"expected {expected}; got {raw!r}")
    ranges = {}
    for split in SPLITS:
        value = raw[split]
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                    for v in value) and 0 <= value[0] < value[1]):
            raise CardError(card.path, f"source.local.ranges.{split}",
                            f"expected [start, stop] with 0 <= start < stop (stop excluded); got {value!r}")
        ranges[split] = (value[0], value[1])
    ordered = sorted(ranges.items(), key=lambda kv: kv[1])
    for (first, (_, stop)), (second, (start, _)) in zip(ordered, ordered[1:]):
        if start < stop:
            raise CardError(card.path, "source.local.ranges",
                            f"splits {first!r} and {second!r} overlap ({ranges[first]} and {ranges[second]}); "
                            "a row may belong to one split only")
    return ranges


def _check_target_names(card: DatasetCard, data, name: str) -> None:
    """MM-IMDb's file stores its genre names (in column order) as the label's attribute
    ``target_names``; the card's ``classes`` must list the same names in the same order."""
    stored = data.attrs.get("target_names")
    classes = getattr(card, "classes", None) or card.info.get("classes")
    if stored is None or classes is None:
        return
    if isinstance(stored, bytes):
        stored = stored.decode("utf-8")
    try:
        stored = json.loads(stored) if isinstance(stored, str) else list(stored)
    except json.JSONDecodeError:
        return
    if [str(c) for c in stored] != [str(c) for c in classes]:
        raise CardError(card.path, "classes", f"expected the class names stored with HDF5 dataset {name!r} "
                                              f"(attribute target_names, in column order): {stored}; got {classes}")


# ---------------------------------------------------------------------------------- mmsa_pickle


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, numpy scalars and dtypes inside builtin containers; refuses every
    other global (a pickle can otherwise call any function while it loads)."""

    ALLOWED = frozenset({
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # how protocol 2 stores the bytes of an array
        ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"), ("builtins", "slice"),
        ("collections", "OrderedDict"),
    })

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def load_numpy_pickle(path: Path) -> Any:
    """``pickle.load`` restricted to numpy arrays, dtypes and builtin values."""
    with open(path, "rb") as handle:
        try:
            return _NumpyOnlyUnpickler(handle).load()
        except pickle.UnpicklingError as exc:
            raise FormatError(
                f"{path}: {exc}: fusebench reads feature pickles with a restricted unpickler that accepts only "
                "numpy arrays, numpy dtypes and builtin values (dict, list, str, numbers), never other objects"
            ) from None
        except (EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as exc:
            raise FormatError(f"{path}: not a readable pickle ({exc.__class__.__name__}: {exc})") from None


def _read_mmsa(card: DatasetCard, path: Path, local: dict) -> tuple[dict, str]:
    fill = local.get("replace_nonfinite")
    if fill is not None and (isinstance(fill, bool) or not isinstance(fill, (int, float))):
        raise CardError(card.path, "source.local.replace_nonfinite",
                        f"expected a number to put in place of -inf/inf/NaN feature values (e.g. 0); got {fill!r}")
    raw = load_numpy_pickle(path)
    if not isinstance(raw, dict) or not all(s in raw for s in MMSA_SPLITS):
        keys = sorted(map(str, raw)) if isinstance(raw, dict) else type(raw).__name__
        raise FormatError(f"{path}: expected MMSA's layout, a dict with keys {list(MMSA_SPLITS)}; got {keys}")
    hasher = hashlib.sha256(json.dumps({"replace_nonfinite": fill}).encode())
    splits = {}
    for mmsa_split, split in MMSA_SPLITS.items():
        part = raw[mmsa_split]
        if not isinstance(part, dict):
            raise FormatError(f"{path}: split {mmsa_split!r}: expected a dict of arrays, got {type(part).__name__}")
        splits[split] = _mmsa_columns(path, mmsa_split, part, fill)
        for column in sorted(splits[split]):
            _hash_array(hasher, f"{split}/{column}", splits[split][column])
    return splits, hasher.hexdigest()


def _mmsa_columns(path: Path, split: str, part: dict, fill) -> dict[str, Any]:
    where = f"{path}: split {split!r}"
    rows = {key: len(value) for key, value in part.items() if hasattr(value, "__len__") and not isinstance(value, str)}
    label_rows = rows.get("regression_labels") or (max(rows.values()) if rows else 0)
    columns: dict[str, Any] = {}
    for key, value in part.items():
        if key == MMSA_TOKEN_IDS or key.endswith("_lengths"):
            continue
        if rows.get(key) != label_rows:
            raise FormatError(f"{where}, key {key!r}: {rows.get(key, 'no')} rows; expected {label_rows} "
                              "(one per row of 'regression_labels')")
        array = value if isinstance(value, np.ndarray) else np.asarray(value, dtype=object if _has_str(value) else None)
        if array.dtype.kind in "fiub":
            if key.endswith("labels") and array.ndim == 2 and array.shape[1] == 1:
                array = array.reshape(-1)  # (N, 1) labels -> (N,)
            if array.dtype.kind == "f":
                array = _finite(array, fill, f"{where}, key {key!r}")
            if array.ndim == 3:
                array = _trim(array, _lengths(path, split, part, key, array), f"{where}, key {key!r}")
            elif array.ndim > 3:
                raise FormatError(f"{where}, key {key!r}: shape {array.shape}; expected (N,), (N, D) or (N, T, D)")
        elif array.ndim == 1 and all(isinstance(v, (str, bytes)) for v in array):
            array = np.array([v.decode("utf-8") if isinstance(v, bytes) else v for v in array], dtype=object)
        else:
            raise FormatError(f"{where}, key {key!r}: values of type {array.dtype} and shape {array.shape}; expected "
                              "numeric arrays (features, labels) or strings (id, raw_text)")
        columns[key] = array
    return columns


def _has_str(value) -> bool:
    return any(isinstance(v, (str, bytes)) for v in value)


def _lengths(path: Path, split: str, part: dict, key: str, array: np.ndarray) -> np.ndarray | None:
    """Valid time steps per row of a ``(N, T, D)`` feature: ``<key>_lengths`` where MMSA records it
    (unaligned audio, vision); for ``text``, the attention mask of ``text_bert`` when it has the
    same T. None: keep all T steps (aligned data)."""
    if f"{key}_lengths" in part:
        return np.asarray(part[f"{key}_lengths"]).astype(np.int64).reshape(-1)
    token_ids = part.get(MMSA_TOKEN_IDS)
    if key == "text" and isinstance(token_ids, np.ndarray) and token_ids.ndim == 3 and token_ids.shape[1] == 3 \
            and token_ids.shape[2] == array.shape[1]:
        return token_ids[:, 1, :].astype(bool).sum(axis=1).astype(np.int64)
    return None


def _finite(array: np.ndarray, fill, where: str) -> np.ndarray:
    bad = ~np.isfinite(array)
    if not bad.any():
        return array
    if fill is None:
        row = int(np.argwhere(bad)[0][0])
        raise FormatError(f"{where}, row {row}: {int(bad.sum())} non-finite feature values (-inf/inf/NaN) in the "
                          "split; set 'source.local.replace_nonfinite: 0' in the card to replace them (MMSA's own "
                          "loader sets -inf audio values to 0)")
    array = array.copy()
    array[bad] = fill
    return array


def _trim(array: np.ndarray, lengths: np.ndarray | None, where: str) -> list:
    """Rows of a ``(N, T, D)`` array cut to their lengths; None for a row of length 0 (no frame:
    the modality is absent in that row)."""
    if lengths is None:
        return list(array)
    if len(lengths) != len(array):
        raise FormatError(f"{where}: {len(lengths)} recorded lengths for {len(array)} rows")
    out = []
    for row, (values, length) in enumerate(zip(array, lengths)):
        if not 0 <= length <= array.shape[1]:
            raise FormatError(f"{where}, row {row}: recorded length {int(length)} outside [0, {array.shape[1]}]")
        out.append(values[:length] if length else None)
    return out


# ------------------------------------------------------------------------------------- shared


def _hash_array(hasher, name: str, values) -> None:
    hasher.update(name.encode())
    if isinstance(values, np.ndarray) and values.dtype.kind != "O":
        hasher.update(f"{values.dtype.str}{values.shape}".encode())
        hasher.update(np.ascontiguousarray(values).tobytes())
        return
    for value in values:
        if value is None:
            hasher.update(b"\x00none")
        elif isinstance(value, np.ndarray):
            hasher.update(f"{value.dtype.str}{value.shape}".encode())
            hasher.update(np.ascontiguousarray(value).tobytes())
        else:
            hasher.update(repr(value).encode())
            hasher.update(b"\x00")


def _to_dataset(columns: dict[str, Any], fingerprint: str):
    import datasets as hf
    import pyarrow as pa
    from datasets.table import InMemoryTable

    arrays = {name: _arrow_column(values) for name, values in columns.items()}
    return hf.Dataset(InMemoryTable(pa.table(arrays)), fingerprint=fingerprint)


def _arrow_column(values):
    """(N,) -> scalars; (N, D) -> fixed-size lists; (N, T, D) or a list of (T_i, D) arrays /
    None -> lists of fixed-size lists (null where None); strings -> strings; ragged 1-D arrays
    (HDF5 variable-length) -> lists."""
    import pyarrow as pa

    if isinstance(values, np.ndarray) and values.dtype.kind != "O":
        if values.ndim == 1:
            return pa.array(values)
        flat = pa.array(np.ascontiguousarray(values).reshape(-1))
        if values.ndim == 2:
            return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])
        rows, steps, width = values.shape
        inner = pa.FixedSizeListArray.from_arrays(flat, width)
        return pa.ListArray.from_arrays(pa.array(np.arange(rows + 1, dtype=np.int32) * steps), inner)
    values = list(values)
    if all(v is None or (isinstance(v, np.ndarray) and v.ndim == 2) for v in values):
        present = [v for v in values if v is not None]
        if present:  # rows of T_i x D: one flat buffer, offsets per row, null for an absent row
            width, dtype = present[0].shape[1], present[0].dtype
            if any(v.shape[1] != width for v in present):
                raise FormatError(f"rows of different widths ({sorted({v.shape[1] for v in present})})")
            counts = np.array([0 if v is None else v.shape[0] for v in values], dtype=np.int64)
            offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
            flat = np.concatenate([v.reshape(-1) for v in present]).astype(dtype, copy=False)
            inner = pa.FixedSizeListArray.from_arrays(pa.array(flat), width)
            mask = pa.array([v is None for v in values])
            return pa.ListArray.from_arrays(pa.array(offsets), inner, mask=mask)
    if all(isinstance(v, np.ndarray) and v.ndim == 1 for v in values):
        return pa.array([v.tolist() for v in values])
    return pa.array(values)


def _listed(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"{shown} (and {len(names) - limit} more)" if len(names) > limit else shown or "no datasets"


