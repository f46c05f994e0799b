"""The encoder contract: an :class:`Encoder` turns one column of a split into pooled features
``(N, D)`` and token features ``(N, T, D)`` with a validity mask ``(N, T)``. Frozen encoders
are run once and cached; an encoder may instead name a :class:`FrontEnd`, a network trained
with the fusion model (its cached features are then that network's raw input)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from strategies.registry import Registry

ProgressFn = Callable[[int], None]

@dataclass
class Encoded:
    pooled: torch.Tensor  # (N, D)
    tokens: torch.Tensor  # (N, T, D)
    mask: torch.Tensor  # bool (N, T)
    # bool (N,): False where the row's modality is absent in the data (a null cell, an empty path,
    # or a missing file where the card allows it); such a row's features are zeros. None: all True.
    present: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.present is None:
            self.present = torch.ones(self.pooled.shape[0], dtype=torch.bool)  # (N,)


class EncodingError(ValueError):
    """A value could not be encoded; the caller adds dataset/split/column context."""

    def __init__(self, row: int, problem: str) -> None:
        self.row, self.problem = row, problem
        super().__init__(f"row {row}: {problem}")


class Encoder:
    """Base encoder: stateless and frozen unless ``fit`` is overridden (tabular)."""

    name = ""
    version = "1"
    input_kind = ""  # "text" | "image" | "tabular" | "audio"
    batch_size = 32
    # The card file's folder, set by build_features: relative file paths in a column resolve
    # against it (not against the current directory). None: the current directory.
    base_dir: Path | None = None

    # Why an option that a related encoder takes is refused here (named in the card check's error).
    option_notes: dict[str, str] = {}

    def __new__(cls, *args: Any, **options: Any) -> "Encoder":
        # Every encoder keeps its options as the card gave them (feature-cache keys and versions read
        # them), while each constructor names the options it takes as keyword parameters: the card
        # check reads them from its signature (benchmark/features/encoder_options.py).
        encoder = super().__new__(cls)
        encoder.options = dict(options)
        return encoder

    def __init__(self) -> None:
        """A frozen encoder without options; subclasses add theirs as keyword-only parameters."""

    def fit(self, train_values: Sequence[Any]) -> None:
        """Fit preprocessing on the training split only (no-op for frozen encoders)."""

    def fit_columns(self, train_split, columns: Sequence[str]) -> None:
        """Fit on several columns of the training split (a ``datasets.Dataset``); no-op unless
        the encoder reads several columns (tabular)."""

    def state(self) -> dict[str, Any]:
        """Whatever fitted state changes the output; part of the cache key."""
        return {}

    def encode(self, values: Sequence[Any], progress: ProgressFn | None = None) -> Encoded:
        raise NotImplementedError

    def front_end(self) -> FrontEnd | None:
        """The trainable network this modality goes through inside the model (None: frozen features)."""
        return None

    def is_absent(self, value: Any) -> bool:
        """Whether a cell holds no value for this modality (never imputed: the row's modality is
        absent). Null (None, NaN) here; media encoders add empty paths and empty structs."""
        return value is None or (isinstance(value, float) and math.isnan(value))

    def referenced_file(self, value: Any) -> Path | None:
        """The file a cell names (resolved against ``base_dir``), or None when it holds the data
        itself (benchmark/features/media.py: image and audio encoders read paths)."""
        return None


ENCODERS: Registry[Callable[..., Encoder]] = Registry("encoder")


@dataclass(frozen=True)
class FrontEnd:
    """A trainable network that the model puts in front of the strategy for one modality.
    ``kind`` names it (see benchmark/train/trainable_encoders.py); ``options`` are its sizes.
    ``pretrained``: the network starts from pretrained weights (a fine-tuned encoder,
    benchmark/features/finetune.py) and trains at the encoder learning rate, not the model's."""

    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    pretrained: bool = False


def batches(n: int, size: int):
    """(start, stop) of consecutive batches of ``size`` over ``n`` rows."""
    for start in range(0, n, size):
        yield start, min(n, start + size)
