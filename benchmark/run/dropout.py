"""Training modality-dropout rates as a profile and the CLI give them: a number drops every
modality with that probability; a mapping gives a rate per named modality (the others are never
dropped), held as a tuple of (modality, rate) pairs sorted by modality so that it is hashable and
writes the same JSON wherever it came from.

Profile: ``dropout_rates: [0.0, 0.3, {image: 0.5, text: 0.1}]``.
CLI: ``--dropout 0,0.3,image=0.5:text=0.1`` (commas separate rates, colons the modalities of one)."""

from __future__ import annotations

from typing import Any

Dropout = float | tuple[tuple[str, float], ...]
CLI_SYNTAX = "comma-separated rates in [0, 1), each a number or per-modality rates such as image=0.5:text=0.1"


def check_rate(value: Any) -> float:
    """A modality-dropout rate: a number in [0, 1)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
        raise ValueError(f"expected rates in [0, 1), got {value!r}")
    return float(value)


def dropout_value(entry: Any) -> Dropout:
    """One profile entry: a number -> float; a mapping {modality: rate} -> sorted ((modality, rate), ...)."""
    if not isinstance(entry, dict):
        return check_rate(entry)
    if not entry:
        raise ValueError("expected a rate or a mapping of modality names to rates, got an empty mapping")
    pairs = []
    for modality, rate in entry.items():
        if not isinstance(modality, str) or not modality.replace("_", "").isalnum():
            raise ValueError(f"expected modality names (letters, digits, _) as keys, got {modality!r}")
        try:
            pairs.append((modality, check_rate(rate)))
        except ValueError as exc:
            raise ValueError(f"modality {modality!r}: {exc}") from None
    return tuple(sorted(pairs))


def training_rate(entry: Dropout) -> Dropout:
    """A checked profile entry (``dropout_value``) in the one form the Plan, its cells and training
    hold: a number as a float (0 -> 0.0), per-modality pairs as they are. Labels
    (vocabulary.dropout_label) are for display, tags and names only."""
    return entry if isinstance(entry, tuple) else float(entry)


def read_dropout(part: str) -> float | dict[str, float]:
    """One ``--dropout`` item as a profile writes it: "0.3" -> 0.3; "text=0.1:image=0.5" -> {"text": 0.1,
    "image": 0.5}. Only its syntax is checked here; the rates are checked with the profile's
    (benchmark/run/profile_model.py, ``dropout_value``)."""
    if "=" not in part:
        try:
            return float(part)
        except ValueError:
            raise ValueError(f"expected {CLI_SYNTAX}; got {part!r}") from None
    mapping = {}
    for item in part.split(":"):
        modality, _, rate = (s.strip() for s in item.partition("="))
        try:
            mapping[modality] = float(rate)
        except ValueError:
            raise ValueError(f"expected {CLI_SYNTAX}; got {item!r} in {part!r}") from None
        if not modality:
            raise ValueError(f"expected {CLI_SYNTAX}; got {item!r} in {part!r} (no modality name)")
    return mapping


def unknown_modalities(dropout_rates, cards: dict) -> str | None:
    """Why a per-modality rate of ``dropout_rates`` cannot apply to every dataset of ``cards`` (name ->
    card): the first modality a dataset lacks, with the dataset's modalities; None when all apply."""
    for dropout in dropout_rates:
        if isinstance(dropout, (int, float)):
            continue
        for name, card in cards.items():
            modalities = list(card.modality_names)
            missing = [m for m, _ in dropout if m not in modalities]
            if missing:
                return (f"modality {missing[0]!r} (in {dict(dropout)}) is not a modality of dataset {name!r}, "
                        f"whose modalities are {modalities}")
    return None
