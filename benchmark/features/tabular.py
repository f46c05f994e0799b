"""Tabular encoder: numeric columns standardised and categorical columns one-hot encoded,
with every statistic (means, standard deviations, category vocabularies) fitted on the
training split only. Card usage::

    modalities:
      tabular: {columns: [age, feedback_count, department], encoder: tabular}

Pooled output: one vector per row (numeric z-scores + a missing-value flag per numeric
column, then one-hot blocks; unseen or missing categories are all-zero). Tokens: one token
per column, each the row vector restricted to that column's slots (same width D), so token
strategies attend over columns."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from benchmark.features.base import ENCODERS, Encoded, Encoder, EncodingError


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@ENCODERS.register("tabular")
class TabularEncoder(Encoder):
    """Numeric scaling + categorical one-hot, fitted on the training split only (card field
    ``columns: [...]``; option ``categorical: [...]`` forces columns to be categorical)."""

    name = "tabular"
    version = "tabular-v1"
    input_kind = "tabular"
    max_categories = 200

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.columns: list[str] = list(options.get("columns") or [])
        self.forced_categorical = set(options.get("categorical") or [])
        self.numeric: dict[str, tuple[float, float]] = {}  # column -> (mean, std)
        self.categories: dict[str, list[str]] = {}  # column -> vocabulary
        self.fitted = False

    # ---- fitting (training split only)
    def fit_columns(self, train_split, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.fit(train_split.select_columns(self.columns).to_list())

    def fit(self, train_values: Sequence[dict]) -> None:
        if not self.columns:
            raise ValueError("tabular encoder: no 'columns' given")
        self.numeric, self.categories = {}, {}
        for column in self.columns:
            values = [row[column] for row in train_values]
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
        return {"columns": self.columns, "numeric": self.numeric, "categories": self.categories}

    def slots(self) -> list[tuple[str, int, int]]:
        """(column, start, stop) of each column's block in the output vector."""
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
        slots = self.slots()
        width = slots[-1][2] if slots else 0
        pooled = torch.zeros(len(values), width)
        index = {c: {v: i for i, v in enumerate(vocab)} for c, vocab in self.categories.items()}
        for row, record in enumerate(values):
            if not isinstance(record, dict):
                raise EncodingError(row, f"expected a row with columns {self.columns}, got {type(record).__name__}")
            for column, start, _ in slots:
                value = record.get(column)
                if column in self.numeric:
                    if _is_missing(value):
                        pooled[row, start + 1] = 1.0  # missing flag; z-score stays 0 (= the train mean)
                    elif not _is_number(value):
                        raise EncodingError(row, f"column {column!r}: expected a number (numeric in train), got {value!r}")
                    else:
                        mean, std = self.numeric[column]
                        pooled[row, start] = (float(value) - mean) / std
                elif not _is_missing(value):
                    position = index[column].get(str(value))
                    if position is not None:  # unseen categories stay all-zero
                        pooled[row, start + position] = 1.0
        if progress:
            progress(len(values))
        tokens = torch.zeros(len(values), len(slots), width)
        for t, (_, start, stop) in enumerate(slots):
            tokens[:, t, start:stop] = pooled[:, start:stop]
        return Encoded(pooled, tokens, torch.ones(len(values), len(slots), dtype=torch.bool))
