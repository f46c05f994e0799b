"""The benchmark matrix: which strategies x datasets x dropout rates x seeds, and the
budgets. Built from a YAML profile (safe loader) with CLI overrides."""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from benchmark.train.precision import AMP_MODES
from benchmark.train.seeds import TUNING_SEED_BASE
from strategies.registry import Registry

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


class ProfileError(ValueError):
    """Invalid profile: names the file and the field."""


@dataclass(frozen=True)
class MatrixConfig:
    name: str
    datasets: tuple[str, ...] = ("emoji",)
    strategies: tuple[str, ...] = ("*",)
    dropout_rates: tuple[float, ...] = (0.3,)
    seeds: tuple[int, ...] = (0,)
    trials: int = 4
    epochs: int = 15  # the epoch cap; early stopping (patience) usually ends training first
    batch_size: int = 64
    device: str = "cpu"
    plugins: tuple[str, ...] = field(default=())
    patience: int = 5
    stack_seeds: bool = True  # train the seeds of a cell as one stacked computation (benchmark/train/stacked.py)
    amp: str = "off"  # mixed precision on CUDA: "off", "bf16" or "fp16" (ignored on CPU)

    def matrix_id(self) -> str:
        """Stable id of this matrix (everything that changes its results): the configuration but
        the device and whether seeds are stacked (how the work runs, not what it is), and the fingerprint of its cells' inputs (cards, encoder versions, strategy
        code, protocol version; benchmark/run/identity.py), the same on every machine."""
        from benchmark.run.identity import current_cards, load_strategies, matrix_inputs_fingerprint

        payload = {k: v for k, v in asdict(self).items() if k not in ("device", "stack_seeds")}
        if self.amp == "off":
            del payload["amp"]  # the same id as before the field existed
        cards, registry = current_cards(), load_strategies(self.plugins)
        payload["inputs"] = matrix_inputs_fingerprint([cards[d] for d in expand(self.datasets, sorted(cards), "dataset")],
                                                      expand(self.strategies, registry.names(), "strategy"))
        return f"{self.name}-{hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MatrixConfig":
        """The inverse of ``dataclasses.asdict`` (as stored when a matrix is registered)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def with_overrides(self, **overrides: Any) -> "MatrixConfig":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


_FIELDS = {
    "name": (str, "a profile name"),
    "datasets": (list, "a list of dataset names or globs"),
    "strategies": (list, "a list of strategy names or globs"),
    "dropout_rates": (list, "a list of training modality-dropout rates in [0, 1)"),
    "seeds": (list, "a list of integer seeds"),
    "trials": (int, "the Optuna trial budget per study (integer >= 0)"),
    "epochs": (int, "the epoch cap (integer >= 1); training stops earlier on a validation plateau"),
    "patience": (int, "epochs without a better validation score before training stops (integer >= 1)"),
    "batch_size": (int, "batch size (integer >= 1)"),
    "stack_seeds": (bool, "true or false: train the seeds of a cell as one stacked computation"),
    "amp": (str, "mixed precision on CUDA: 'off', 'bf16' or 'fp16'"),
}


def profile_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        return path
    candidate = PROFILES_DIR / f"{name_or_path}.yaml"
    if not candidate.is_file():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise ProfileError(f"unknown profile {name_or_path!r}; known profiles: {known}, or pass a path to a YAML file")
    return candidate


def load_profile(name_or_path: str) -> MatrixConfig:
    path = profile_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ProfileError(f"{path}: profile file does not exist") from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: expected a mapping of fields {sorted(_FIELDS)}")
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise ProfileError(f"{path}: unknown field(s) {unknown}; expected some of {sorted(_FIELDS)}")
    for key, value in raw.items():
        kind, expected = _FIELDS[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise ProfileError(f"{path}: field '{key}': expected {expected}, got {value!r}")
    for rate in raw.get("dropout_rates", []):
        if not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ProfileError(f"{path}: field 'dropout_rates': expected rates in [0, 1), got {rate!r}")
    for seed in raw.get("seeds", []):
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < TUNING_SEED_BASE:
            raise ProfileError(f"{path}: field 'seeds': expected integers in [0, {TUNING_SEED_BASE}) "
                               f"(seeds from {TUNING_SEED_BASE} up are tuning seeds), got {seed!r}")
    if raw.get("amp", "off") not in AMP_MODES:
        raise ProfileError(f"{path}: field 'amp': expected one of {list(AMP_MODES)}, got {raw['amp']!r}")
    for key, low in (("trials", 0), ("epochs", 1), ("batch_size", 1), ("patience", 1)):
        if key in raw and raw[key] < low:
            raise ProfileError(f"{path}: field '{key}': expected an integer >= {low}, got {raw[key]!r}")
    return MatrixConfig.from_dict({"name": path.stem, **raw})


def expand(patterns: tuple[str, ...], known: list[str], what: str) -> list[str]:
    """Resolve names and globs against the known names, preserving order, no duplicates."""
    chosen: list[str] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            matches = fnmatch.filter(known, pattern)
            if not matches:
                raise ProfileError(f"{what} pattern {pattern!r} matches nothing; known: {', '.join(known)}")
        else:
            registry: Registry[str] = Registry(what)
            for name in known:
                registry.add(name, name)
            matches = [registry.get(pattern)]
        chosen += [m for m in matches if m not in chosen]
    return chosen


def parse_list(text: str | None, cast=str) -> tuple | None:
    if text is None:
        return None
    return tuple(cast(part.strip()) for part in text.split(",") if part.strip())
