"""Precomputed features: the ``vector`` encoder reads one column whose cells already are
numbers (embeddings a user extracted elsewhere, as MultiBench and MMSA ship them). Card usage::

    modalities:
      audio: {column: covarep, encoder: vector, standardize: true}

A cell is a fixed-length vector (a parquet/arrow list, a JSON array, a string holding a JSON
array) or a 2-D array ``rows x width`` (a list of lists), or a path to a ``.npy`` file holding
either (relative paths resolve against the card's folder). Every non-null cell of a column has
the rank and width of the training split's first one.

- vectors: pooled ``(N, D)``; tokens are that vector as one token ``(N, 1, D)``.
- 2-D arrays: tokens ``(N, T_max, D)`` padded with zeros, mask ``(N, T_max)`` true on real rows
  (option ``max_tokens`` keeps the first rows of longer arrays); pooled = masked mean ``(N, D)``.

Option ``standardize: true`` scales each feature by the training split's mean and standard
deviation (fitted on train only; part of the cache key). A null cell (or a 0-row array) is a
naturally missing modality: its row is zeros (one zero token, so no row is wholly masked) and
``Encoded.present`` marks it absent. Rows of another length, rank or dtype, and non-finite
values, are errors naming the row."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

import numpy as np
import torch

from benchmark.features.base import ENCODERS, Encoded, Encoder, EncodingError
from benchmark.features.media import MISSING_HINT, resolve_path

_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats


@ENCODERS.register("vector")
class VectorEncoder(Encoder):
    """Precomputed features: a column of fixed-length vectors (pooled) or of 2-D arrays
    (tokens + padding mask), from lists, JSON arrays or .npy paths; option ``standardize``."""

    name = "vector"
    version = "vector-v1"
    input_kind = "vector"

    def __init__(self, *, standardize: bool = False, max_tokens: int | None = None) -> None:
        super().__init__()
        self.standardize = standardize
        if not isinstance(self.standardize, bool):
            raise ValueError(f"option 'standardize': expected true or false, got {self.standardize!r}")
        self.max_tokens = max_tokens
        if self.max_tokens is not None and (isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int)
                                            or self.max_tokens < 1):
            raise ValueError(f"option 'max_tokens': expected a positive integer, got {self.max_tokens!r}")
        self.rank: int | None = None  # 1 (vectors) or 2 (arrays of rows), from the training split
        self.width: int | None = None  # D
        self.layout_from = "the training split"  # where rank and width came from, for errors
        self.fitting = False
        self.mean: np.ndarray | None = None  # (D,) train statistics when standardize
        self.std: np.ndarray | None = None  # (D,)

    # ---- reading one cell
    def is_absent(self, value: Any) -> bool:
        return super().is_absent(value) or (isinstance(value, str) and not value.strip())

    def referenced_file(self, value: Any):
        if isinstance(value, str) and value.strip() and not value.lstrip().startswith("["):
            return resolve_path(value.strip(), self.base_dir)
        return None

    def _array(self, row: int, value: Any) -> np.ndarray | None:
        """The cell as a float64 array of rank 1 or 2 (None: absent), checked against the
        fitted rank and width."""
        if self.is_absent(value):
            return None
        source = ""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except ValueError as exc:
                    raise EncodingError(row, f"a string that starts with '[' but is not a JSON array ({exc})") from None
            else:
                path = resolve_path(text, self.base_dir)
                source = f" (from {path})"
                if path.suffix != ".npy":
                    raise EncodingError(row, f"expected a vector, a 2-D array or a path to a .npy file, got the "
                                             f"string {value[:80]!r}")
                if not path.is_file():
                    raise EncodingError(row, f"file {path} does not exist ({MISSING_HINT})")
                try:
                    value = np.load(path, allow_pickle=False)
                except (OSError, ValueError) as exc:
                    raise EncodingError(row, f"cannot read {path}: {exc.__class__.__name__}: {exc}") from None
        if isinstance(value, (bytes, dict)) or np.isscalar(value):
            raise EncodingError(row, f"expected a vector or a 2-D array of numbers, got {type(value).__name__} "
                                     f"{str(value)[:80]!r}")
        try:
            array = np.asarray(value)
        except ValueError:  # ragged nesting (numpy refuses it)
            raise EncodingError(row, f"rows of different lengths in a 2-D array{source}") from None
        if array.dtype.kind not in _NUMERIC_KINDS:
            found = "nulls, ragged rows or mixed values" if array.dtype.kind == "O" else f"dtype {array.dtype}"
            raise EncodingError(row, f"expected numbers, got {found}{source}")
        if array.ndim not in (1, 2):
            raise EncodingError(row, f"expected a vector or a 2-D array (rows x width), got rank {array.ndim} "
                                     f"shape {tuple(array.shape)}{source}")
        if array.size == 0:  # an empty vector or a 0-row array: nothing present
            return None
        array = array.astype(np.float64)
        if self.rank is not None and array.ndim != self.rank:
            expected = f"a vector of length {self.width}" if self.rank == 1 else f"a 2-D array of width {self.width}"
            raise EncodingError(row, f"expected {expected} (as in {self.layout_from}), got shape "
                                     f"{tuple(array.shape)}{source}")
        if self.width is not None and array.shape[-1] != self.width:
            what = "length" if array.ndim == 1 else "width"
            raise EncodingError(row, f"{what} {array.shape[-1]}, expected {self.width} (as in "
                                     f"{self.layout_from}){source}")
        if not np.isfinite(array).all():
            raise EncodingError(row, f"non-finite value (NaN or inf) at index "
                                     f"{tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])}{source}")
        if array.ndim == 2 and self.max_tokens is not None:
            array = array[: self.max_tokens]
        return array

    def _arrays(self, values: Sequence[Any]) -> list[np.ndarray | None]:
        arrays = []
        for row, value in enumerate(values):
            array = self._array(row, value)
            if array is not None and self.rank is None:  # the first cell fixes the layout
                self.rank, self.width = array.ndim, int(array.shape[-1])
                self.layout_from = self.layout_from if self.fitting else f"row {row}"
            arrays.append(array)
        return arrays

    # ---- fitting (training split only)
    def fit(self, train_values: Sequence[Any]) -> None:
        self.rank = self.width = self.mean = self.std = None
        self.fitting, self.layout_from = True, "the training split"
        try:
            arrays = self._arrays(train_values)
        finally:
            self.fitting = False
        if self.rank is None:
            raise ValueError("no cell of the training split holds a vector or a 2-D array (all null or empty)")
        if self.standardize:
            rows = np.concatenate([a.reshape(-1, self.width) for a in arrays if a is not None])  # (R, D)
            self.mean = rows.mean(0)  # (D,)
            std = rows.std(0)  # (D,)
            self.std = np.where(std > 1e-12, std, 1.0)

    def state(self) -> dict[str, Any]:
        stats = ""
        if self.mean is not None:
            stats = hashlib.sha256(self.mean.tobytes() + self.std.tobytes()).hexdigest()[:16]
        return {"rank": self.rank, "width": self.width, "standardize": stats}

    # ---- encoding
    @torch.no_grad()
    def encode(self, values, progress=None):
        if self.standardize and self.mean is None:
            raise RuntimeError("vector encoder: fit(train_values) must run before encode when standardize is on")
        arrays = self._arrays(values)
        n, width = len(arrays), self.width or 1
        present = torch.tensor([a is not None for a in arrays], dtype=torch.bool)  # (N,)
        if self.mean is not None:
            arrays = [None if a is None else (a - self.mean) / self.std for a in arrays]
        if self.rank == 2:
            length = max([a.shape[0] for a in arrays if a is not None] + [1])  # T_max
            tokens = np.zeros((n, length, width), dtype=np.float32)  # (N, T, D)
            mask = np.zeros((n, length), dtype=bool)  # (N, T)
            for row, array in enumerate(arrays):
                if array is not None:
                    tokens[row, : array.shape[0]] = array
                    mask[row, : array.shape[0]] = True
            mask[~present.numpy(), 0] = True  # an absent row: one zero token, the presence mask says absent
            tokens_t, mask_t = torch.from_numpy(tokens), torch.from_numpy(mask)
            pooled = (tokens_t * mask_t.unsqueeze(-1)).sum(1) / mask_t.sum(1, keepdim=True)  # (N, D)
        else:
            pooled_np = np.zeros((n, width), dtype=np.float32)  # (N, D)
            for row, array in enumerate(arrays):
                if array is not None:
                    pooled_np[row] = array
            pooled = torch.from_numpy(pooled_np)
            tokens_t = pooled.unsqueeze(1)  # (N, 1, D)
            mask_t = torch.ones(n, 1, dtype=torch.bool)  # (N, 1)
        if progress:
            progress(n)
        return Encoded(pooled, tokens_t, mask_t, present)
