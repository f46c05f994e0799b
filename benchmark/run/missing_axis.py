"""The matrix axis ``missing_inputs``: which ways of filling an absent modality a matrix compares
(benchmark/train/missing_inputs.py). "zero" zero-fills with a presence mask (the default),
"learned" trains a vector per modality that stands in for it. Plain Python: validation only."""

from __future__ import annotations

from typing import Any

from benchmark.vocabulary import MISSING_INPUT, MISSING_INPUTS, MISSING_ZERO

DEFAULT = (MISSING_ZERO,)
EXPECTED = f"a list of missing-input techniques, each one of {list(MISSING_INPUTS)} (default [zero])"


def check_missing_inputs(values: Any) -> tuple[str, ...]:
    """The techniques of a profile or flag: a non-empty list of known names, no repeats."""
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"expected {EXPECTED}, got {values!r}")
    for value in values:
        if value not in MISSING_INPUTS:
            raise ValueError(f"expected each of {list(MISSING_INPUTS)}, got {value!r}")
    if len(set(values)) < len(values):
        raise ValueError(f"expected each technique once, got {list(values)}")
    return tuple(values)


def parse_missing_inputs(text: str) -> tuple[str, ...]:
    """``--missing-inputs``: comma-separated techniques, e.g. ``zero,learned``."""
    parts = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not part for part in parts):
        raise ValueError(f"expected comma-separated techniques from {list(MISSING_INPUTS)}, e.g. zero,learned; "
                         f"got {text!r}")
    return check_missing_inputs(parts)


def technique_variants(variant: str, fixed: dict, techniques: tuple[str, ...]) -> list[tuple[str, dict]]:
    """(variant, fixed hyperparameters) of a fusion variant for each technique: "zero" keeps the
    variant as it is (its cells keep their hash and study); "learned" gives "<variant>@learned" with
    ``missing_input: learned``."""
    out = []
    for technique in techniques:
        if technique == MISSING_ZERO:
            out.append((variant, fixed))
        else:
            out.append((f"{variant}@{technique}", {**fixed, MISSING_INPUT: technique}))  # "@learned": LEARNED_SUFFIX
    return out
