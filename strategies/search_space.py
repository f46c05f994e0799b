"""Search spaces declared as data. The tuner turns these into Optuna suggestions;
model code never touches an Optuna trial."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class IntParam:
    low: int
    high: int
    default: int
    log: bool = False


@dataclass(frozen=True)
class FloatParam:
    low: float
    high: float
    default: float
    log: bool = False


@dataclass(frozen=True)
class Categorical:
    choices: Sequence[Any]
    default: Any


Param = IntParam | FloatParam | Categorical


def defaults(space: dict[str, Param]) -> dict[str, Any]:
    """The default value of every parameter in a search space."""
    return {name: param.default for name, param in space.items()}
