"""Tabular encoder: numeric columns standardised and categorical columns one-hot encoded,
with every statistic (means, standard deviations, category vocabularies) fitted on the
training split only. Card usage::

    modalities:
      tabular: {columns: [age, feedback_count, department], encoder: tabular}

Pooled output: one vector per row (numeric z-scores + a missing-value flag per numeric
column, then one-hot blocks; unseen or missing categories are all-zero), 2 slots per numeric
column: linear in the column count.

Tokens: a frozen version of FT-Transformer's feature tokenizer (Gorishniy et al., "Revisiting
Deep Learning Models for Tabular Data", NeurIPS 2021). Each column contributes

- numeric column c:      z * w_c + b_c   (+ m_c when the value is missing, z = 0)
- categorical column c:  e_{c,k} + b_c   (e = 0 for an unseen or missing category)

where w_c, b_c (the column-identity code), m_c and e_{c,k} are fixed Gaussian vectors of
variance 1/E drawn from a seed derived from the column name (and the category), so the same
column gets the same code in every run and on every machine. They are frozen rather than
learned because features are encoded once and cached; the strategy's own token projection
is what learns. With at most ``max_tokens`` columns (default 64) each column is one token of
width E = ``token_width`` (default 32). A wider table shares tokens: consecutive columns in
groups of at most k = ceil(C / max_tokens), a group's token the sum of its columns'
contributions over sqrt(k), and E = max(token_width, 2k), so that the map from a group's
z-scores and missing flags to its token stays injective (2k random directions in E >= 2k
dimensions). Tokens are then (N, min(C, max_tokens), E): their size grows linearly with the
column count (it used to grow with its square: each token was as wide as the whole row), and
attention over them is bounded by max_tokens."""

from __future__ import annotations

import hashlib
import math
from typing import Any, Sequence

import numpy as np
import torch

from benchmark.features.base import ENCODERS, Encoded, Encoder, EncodingError


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple, dict, np.ndarray))


def _vector_hint(column: str) -> str:
    return (f"column {column!r} holds lists (vectors), not single values; the tabular encoder takes one number or "
            f"category per cell: declare a modality '{{column: {column}, encoder: vector}}' for a column of vectors")


def _code(width: int, *names: str) -> np.ndarray:
    """A fixed Gaussian vector of variance 1/width, seeded by ``names`` (stable across runs)."""
    seed = int.from_bytes(hashlib.sha256("\x1f".join(names).encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(width) / math.sqrt(width)  # (E,)


@ENCODERS.register("tabular")
class TabularEncoder(Encoder):
    """Numeric scaling + categorical one-hot, fitted on the training split only (card field
    ``columns: [...]``; option ``categorical: [...]`` forces columns to be categorical)."""

    name = "tabular"
    version = "tabular-v2-grouped-tokens"
    input_kind = "tabular"
    max_categories = 200
    default_token_width = 32
    default_max_tokens = 64

    def __init__(self, *, columns: Sequence[str], categorical: Sequence[str] | None = None,
                 token_width: int = default_token_width, max_tokens: int = default_max_tokens) -> None:
        super().__init__()
        if not columns:
            raise ValueError("the tabular encoder reads several columns: expected 'columns: [a, b, ...]' "
                             "(a list of column names), not 'column:'")
        self.columns: list[str] = list(columns)
        self.forced_categorical = set(categorical or [])
        self.token_width = token_width
        self.max_tokens = max_tokens
        for option, value in (("token_width", self.token_width), ("max_tokens", self.max_tokens)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ValueError(f"option {option!r}: expected an integer >= 2, got {value!r}")
        self.numeric: dict[str, tuple[float, float]] = {}  # column -> (mean, std)
        self.categories: dict[str, list[str]] = {}  # column -> vocabulary
        self.fitted = False

    # ---- fitting (training split only)
    def fit_columns(self, train_split, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.fit(train_split.select_columns(self.columns).to_list())

    def fit(self, train_values: Sequence[dict]) -> None:
        self.numeric, self.categories = {}, {}
        for column in self.columns:
            values = [row[column] for row in train_values]
            for row, value in enumerate(values):
                if _is_sequence(value):
                    raise EncodingError(row, _vector_hint(column))
            present = [v for v in values if not _is_missing(v)]
            if column not in self.forced_categorical and present and all(_is_number(v) for v in present):
                array = np.asarray(present, dtype=np.float64)
                std = float(array.std())
                self.numeric[column] = (float(array.mean()), std if std > 1e-12 else 1.0)
            else:
                vocab = sorted({str(v) for v in present})
                if len(vocab) > self.max_categories:
                    raise ValueError(
                        f"tabular encoder: column {column!r} has {len(vocab)} distinct values in train (more than "
                        f"{self.max_categories}); a free-text column belongs in a text modality")
                self.categories[column] = vocab
        self.fitted = True

    def state(self) -> dict[str, Any]:
        return {"columns": self.columns, "numeric": self.numeric, "categories": self.categories,
                "token_width": self.token_width, "max_tokens": self.max_tokens}

    def token_layout(self) -> tuple[list[int], int]:
        """(the token of each column, the token width E): consecutive columns share a token
        when there are more than ``max_tokens``; E grows to twice the largest group."""
        count = len(self.columns)
        tokens = min(count, self.max_tokens)
        group = [c * tokens // count for c in range(count)]  # balanced consecutive groups
        largest = -(-count // tokens) if count else 1  # ceil(C / T)
        return group, max(self.token_width, 2 * largest)

    def slots(self) -> list[tuple[str, int, int]]:
        """(column, start, stop) of each column's block in the pooled vector."""
        out, start = [], 0
        for column in self.columns:
            width = 2 if column in self.numeric else len(self.categories[column])
            out.append((column, start, start + width))
            start += width
        return out

    # ---- encoding
    @torch.no_grad()
    def encode(self, values, progress=None):
        if not self.fitted:
            raise RuntimeError("tabular encoder: fit_columns(train_split, columns) must run before encode")
        n, slots = len(values), self.slots()
        group, width = self.token_layout()
        scale = 1.0 / np.sqrt(np.bincount(group))  # (T,) 1/sqrt(k) per token
        pooled = np.zeros((n, slots[-1][2] if slots else 0), dtype=np.float32)  # (N, P)
        tokens = np.zeros((n, len(scale), width), dtype=np.float32)  # (N, T, E): T <= max_tokens, T*E ~ 2C
        for row, record in enumerate(values):
            if not isinstance(record, dict):
                raise EncodingError(row, f"expected a row with columns {self.columns}, got {type(record).__name__}")
        for t, (column, start, _) in enumerate(slots):
            cells = [record.get(column) for record in values]
            identity = _code(width, column, "column")  # (E,) b_c
            if column in self.numeric:
                mean, std = self.numeric[column]
                z = np.zeros(n, dtype=np.float64)  # (N,)
                missing = np.zeros(n, dtype=bool)  # (N,)
                for row, value in enumerate(cells):
                    if _is_missing(value):
                        missing[row] = True  # z stays 0 (= the train mean)
                    elif _is_number(value):
                        z[row] = (float(value) - mean) / std
                    elif _is_sequence(value):
                        raise EncodingError(row, _vector_hint(column))
                    else:
                        raise EncodingError(row, f"column {column!r}: expected a number (numeric in train), got {value!r}")
                pooled[:, start] = z
                pooled[:, start + 1] = missing
                tokens[:, group[t]] += scale[group[t]] * (z[:, None] * _code(width, column, "value")  # (N, E)
                                                           + missing[:, None] * _code(width, column, "missing") + identity)
            else:
                vocab = self.categories[column]
                index = {v: i for i, v in enumerate(vocab)}
                table = np.stack([_code(width, column, "category", v) for v in vocab] + [np.zeros(width)])  # (K+1, E)
                positions = np.full(n, len(vocab))  # (N,) K = unseen or missing: all-zero
                for row, value in enumerate(cells):
                    if _is_sequence(value):
                        raise EncodingError(row, _vector_hint(column))
                    if not _is_missing(value):
                        positions[row] = index.get(str(value), len(vocab))
                seen = positions < len(vocab)
                pooled[np.flatnonzero(seen), start + positions[seen]] = 1.0
                tokens[:, group[t]] += scale[group[t]] * (table[positions] + identity)  # (N, E)
        if progress:
            progress(n)
        mask = torch.ones(n, len(scale), dtype=torch.bool)  # (N, T)
        return Encoded(torch.from_numpy(pooled), torch.from_numpy(tokens), mask)
