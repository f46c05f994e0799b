"""Per-dimension z-scoring of encoded features with statistics fitted on the training split only
(the audio encoders' ``standardize`` option; ``vector`` does the same for precomputed columns).

Pooled vectors and tokens are scaled separately: pooled by the training rows' mean and standard
deviation of each pooled dimension, tokens by those of every real (unmasked) training token.
Padding tokens stay exactly zero. A dimension that is constant on the training split keeps its
scale (sd taken as 1), so it maps to 0 instead of dividing by zero."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import torch

from benchmark.features import cache as feature_cache
from benchmark.features.base import Encoded

MIN_SD = 1e-6  # below this a training dimension counts as constant


@dataclass(frozen=True)
class TrainStatistics:
    pooled_mean: torch.Tensor  # (D_p,)
    pooled_sd: torch.Tensor  # (D_p,)
    token_mean: torch.Tensor  # (D_t,)
    token_sd: torch.Tensor  # (D_t,)

    @classmethod
    def fit(cls, encoded: Encoded) -> "TrainStatistics":
        """Statistics of the training split's features (every row given is a present one)."""
        pooled = encoded.pooled.double()  # (N, D_p)
        real = encoded.tokens.double()[encoded.mask]  # (R, D_t): the real tokens of every row
        return cls(pooled.mean(0), _safe_sd(pooled), real.mean(0), _safe_sd(real))

    def apply(self, encoded: Encoded) -> Encoded:
        """The same features z-scored with these (training) statistics; padding stays zero."""
        pooled = ((encoded.pooled.double() - self.pooled_mean) / self.pooled_sd).float()  # (N, D_p)
        tokens = ((encoded.tokens.double() - self.token_mean) / self.token_sd).float()  # (N, T, D_t)
        tokens = tokens * encoded.mask.unsqueeze(-1)  # (N, T, D_t): padding back to zero
        return Encoded(pooled, tokens, encoded.mask, encoded.present)

    def digest(self) -> str:
        """A short hash of the statistics (part of the feature cache key through ``state()``)."""
        blob = b"".join(t.double().numpy().tobytes() for t in (self.pooled_mean, self.pooled_sd,
                                                               self.token_mean, self.token_sd))
        return hashlib.sha256(blob).hexdigest()[:16]


def fit_cached(key: str, compute: Callable[[], Encoded], label: str) -> TrainStatistics:
    """The training statistics stored under ``key`` in the feature cache folder
    (``train-stats/<key>.safetensors``, kept out of ``fusebench cache list``; ``cache clear``
    deletes them too), else fitted on ``compute()`` and stored: a run whose features
    are all cached does not encode the training split again just to fit. ``key`` must hash the
    training rows' content and everything else that changes the features."""
    root = feature_cache.stats_dir()
    path = feature_cache.entry_path(key, root)
    if path.is_file():
        try:
            tensors = feature_cache.map_tensors(path)
            return TrainStatistics(*(tensors[f].double() for f in _FIELDS))
        except (feature_cache.DamagedEntry, KeyError, OSError, TypeError):
            path.unlink(missing_ok=True)  # damaged or foreign: fitted again
    statistics = TrainStatistics.fit(compute())
    feature_cache.save_entry(key, {f: getattr(statistics, f) for f in _FIELDS},
                             {"kind": "train statistics", "encoder": label}, root)
    return statistics


_FIELDS = ("pooled_mean", "pooled_sd", "token_mean", "token_sd")


def _safe_sd(rows: torch.Tensor) -> torch.Tensor:
    """(R, D) -> (D,) population standard deviation, 1 where a dimension is constant."""
    sd = rows.std(0, unbiased=False) if rows.shape[0] > 1 else torch.zeros(rows.shape[1], dtype=rows.dtype)
    return torch.where(sd > MIN_SD, sd, torch.ones_like(sd))
