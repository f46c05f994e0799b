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

from benchmark.run.dropout import CLI_SYNTAX, Dropout, dropout_value, parse_dropout
from benchmark.train.precision import AMP_MODES
from benchmark.train.seeds import TUNING_SEED_BASE
from benchmark.yamlfile import YamlInputError, did_you_mean, read_yaml
from strategies.registry import Registry

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


class ProfileError(ValueError):
    """Invalid profile: names the file and the field."""


@dataclass(frozen=True)
class MatrixConfig:
    name: str
    datasets: tuple[str, ...] = ("emoji",)
    strategies: tuple[str, ...] = ("*",)
    dropout_rates: tuple[Dropout, ...] = (0.3,)  # a rate for every modality, or sorted ((modality, rate), ...)
    seeds: tuple[int, ...] = (0,)
    trials: int = 4
    epochs: int = 15  # the epoch cap; early stopping (patience) usually ends training first
    batch_size: int = 64
    device: str = "cpu"
    plugins: tuple[str, ...] = field(default=())
    patience: int = 5
    # Train the seeds of a cell as one stacked computation (benchmark/train/stacked.py). Off by default:
    # on a CPU the stacked step cost 1.28x (concat) and 1.15x (cross_attention) of a lone model's step
    # per model (`fusebench perf loop`, 2026-12), so it pays on a GPU only (the full profile turns it on).
    stack_seeds: bool = False
    amp: str = "off"  # mixed precision on CUDA: "off", "bf16" or "fp16" (ignored on CPU)
    missing_inputs: tuple[str, ...] = ("zero",)  # how absent modalities are filled: "zero", "learned" (missing_axis.py)
    # (absolute path, sha256 of the file) of each card given by path in `datasets`: pinned when the
    # matrix is registered, checked by every worker (benchmark/run/card_files.py). Not in the id.
    card_files: tuple[tuple[str, str], ...] = field(default=())
    # k-fold cross-validation for every dataset instead of its fixed split (None: each card's own
    # `folds`, or its fixed split); overrides the cards' `folds` (benchmark/run/folds.py)
    folds: int | None = None
    # Neither early stopping nor the rate's decay fires before this epoch; the wait after the best
    # epoch grows with it (ceil(patience_ratio x best epoch), between 4 and `patience`; 0: always
    # `patience`). benchmark/train/loop.py, wait_epochs.
    min_epochs: int = 5
    patience_ratio: float = 0.5
    # "shared": one Optuna study per dataset and strategy variant, tuned at the middle training
    # dropout rate, its hyperparameters retrained at every rate; "per_rate": one study per rate.
    tuning: str = "shared"
    # The token budget of token strategies: a modality with more tokens is pooled to at most this
    # many (an image grid by 2-D average pooling, a sequence by masked means over windows);
    # None: every token (benchmark/features/token_budget.py).
    max_tokens: int | None = 16

    def matrix_id(self) -> str:
        """Stable id of this matrix (everything that changes its results): the configuration but
        the device and whether seeds are stacked (how the work runs, not what it is), and the fingerprint of its cells' inputs (cards, encoder versions, strategy
        code, protocol version; benchmark/run/identity.py), the same on every machine."""
        from benchmark.run.card_files import dataset_names
        from benchmark.run.identity import load_strategies, matrix_inputs_fingerprint

        payload = {k: v for k, v in asdict(self).items() if k not in ("device", "stack_seeds", "card_files")}
        if self.amp == "off":
            del payload["amp"]  # the same id as before the field existed
        if tuple(self.missing_inputs) == ("zero",):
            del payload["missing_inputs"]  # likewise
        if self.folds is None:
            del payload["folds"]  # likewise
        payload["datasets"] = dataset_names(self.datasets, self.card_files)  # a card's name, never its path
        registry = load_strategies(self.plugins)
        payload["inputs"] = matrix_inputs_fingerprint(list(self.cards().values()),
                                                      expand(self.strategies, registry.names(), "strategy"))
        return f"{self.name}-{hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]}"

    def tuning_dropout(self, dropout: Dropout) -> Dropout:
        """The training dropout rate at which the study of a cell trained at ``dropout`` tunes: the
        cell's own under ``tuning: per_rate``; under ``shared``, the middle of the matrix's rates as
        listed (0.3 of 0, 0.3, 0.6), so one study serves every rate."""
        if self.tuning == "per_rate":
            return dropout
        middle = self.dropout_rates[len(self.dropout_rates) // 2]
        return middle if isinstance(middle, tuple) else float(middle)

    def cards(self):
        """Dataset name -> card of this matrix's datasets (names, globs, card paths), in order."""
        from benchmark.run.card_files import matrix_cards

        return matrix_cards(self.datasets, self.card_files)

    def pinned(self) -> "MatrixConfig":
        """This configuration with the sha256 of each card file it names by path recorded."""
        from benchmark.run.card_files import pin

        return replace(self, card_files=pin(self.datasets))

    def localised(self, search: tuple[str, ...] = ()) -> "MatrixConfig":
        """This configuration with each pinned card path replaced by a file with the same bytes on
        this machine (``card_files.localise``); raises when a card file differs or is not found."""
        from benchmark.run.card_files import localise

        datasets, card_files = localise(self.datasets, self.card_files, search)
        return replace(self, datasets=datasets, card_files=card_files)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MatrixConfig":
        """The inverse of ``dataclasses.asdict`` (as stored when a matrix is registered)."""
        def frozen(value):
            return tuple(frozen(v) for v in value) if isinstance(value, (list, tuple)) else value

        return cls(**{k: frozen(v) for k, v in data.items()})

    def with_overrides(self, **overrides: Any) -> "MatrixConfig":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


_FIELDS = {
    "name": (str, "a profile name"),
    "datasets": (list, "a list of dataset names, globs or card paths (relative to the profile's folder)"),
    "strategies": (list, "a list of strategy names or globs"),
    "dropout_rates": (list, "a list of training modality-dropout rates in [0, 1): numbers (every modality) or "
                            "mappings of modality names to rates such as {image: 0.5, text: 0.1}"),
    "seeds": (list, "a list of integer seeds"),
    "trials": (int, "the Optuna trial budget per study (integer >= 0)"),
    "epochs": (int, "the epoch cap (integer >= 1); training stops earlier on a validation plateau"),
    "patience": (int, "epochs without a better validation score before training stops (integer >= 1)"),
    "batch_size": (int, "batch size (integer >= 1)"),
    "stack_seeds": (bool, "true or false: train the seeds of a cell as one stacked computation"),
    "amp": (str, "mixed precision on CUDA: 'off', 'bf16' or 'fp16'"),
    "missing_inputs": (list, "a list of missing-input techniques: zero (zero-fill + presence mask), learned"),
    "folds": (int, "an integer >= 2: k-fold cross-validation on every dataset instead of its fixed split"),
    "min_epochs": (int, "the first epoch at which early stopping or the rate's decay may fire (integer >= 1)"),
    "patience_ratio": ((int, float), "the wait after the best epoch as a share of it (a number >= 0; 0: always "
                                     "`patience`)"),
    "tuning": (str, "'shared' (one study per dataset and strategy, tuned at the middle dropout rate) or "
                    "'per_rate' (one study per training dropout rate)"),
    "max_tokens": (int, "the most tokens a token strategy sees per modality (integer >= 1, or null for every "
                        "token); more are pooled"),
}
TUNING_SCOPES = ("shared", "per_rate")
NULLABLE_FIELDS = ("max_tokens",)  # null: no token budget


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
        raw = read_yaml(path) or {}
    except FileNotFoundError:
        raise ProfileError(f"{path}: profile file does not exist") from None
    except YamlInputError as exc:
        raise ProfileError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: expected a mapping of fields {sorted(_FIELDS)}")
    unknown = sorted(map(str, set(raw) - set(_FIELDS)))
    if unknown:
        raise ProfileError(f"{path}: unknown field(s) {unknown}{did_you_mean(unknown[0], _FIELDS)}; expected some of "
                           f"{sorted(_FIELDS)}")
    for key, value in raw.items():
        kind, expected = _FIELDS[key]
        if value is None and key in NULLABLE_FIELDS:
            continue
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))):
            raise ProfileError(f"{path}: field '{key}': expected {expected}, got {value!r}")
    for key in ("datasets", "strategies", "dropout_rates", "seeds"):
        if key in raw and not raw[key]:
            raise ProfileError(f"{path}: field '{key}': expected {_FIELDS[key][1]} (at least one), got an empty list")
    for key in ("datasets", "strategies"):
        bad = [v for v in raw.get(key, []) if not isinstance(v, str) or not v.strip()]
        if bad:
            raise ProfileError(f"{path}: field '{key}': expected {_FIELDS[key][1]}, got {bad[0]!r}")
    try:  # a mapping becomes sorted (modality, rate) pairs; numbers stay as written (the matrix id)
        values = [dropout_value(r) for r in raw.get("dropout_rates", [])]  # validates every entry
        if values:
            raw["dropout_rates"] = [v if isinstance(r, dict) else r for r, v in zip(raw["dropout_rates"], values)]
    except ValueError as exc:
        raise ProfileError(f"{path}: field 'dropout_rates': {exc}") from None
    try:
        check_seeds(raw.get("seeds", []))
    except ValueError as exc:
        raise ProfileError(f"{path}: field 'seeds': {exc}") from None
    if "datasets" in raw:  # card paths in a profile are relative to the profile's folder
        from benchmark.run.card_files import normalise_entries

        raw["datasets"] = list(normalise_entries(raw["datasets"], path.resolve().parent, f"{path}: field 'datasets'"))
    if "missing_inputs" in raw:
        from benchmark.run.missing_axis import check_missing_inputs

        try:
            check_missing_inputs(raw["missing_inputs"])
        except ValueError as exc:
            raise ProfileError(f"{path}: field 'missing_inputs': {exc}") from None
    if raw.get("amp", "off") not in AMP_MODES:
        raise ProfileError(f"{path}: field 'amp': expected one of {list(AMP_MODES)}, got {raw['amp']!r}")
    for key, low in (("trials", 0), ("epochs", 1), ("batch_size", 1), ("patience", 1), ("folds", 2),
                     ("min_epochs", 1), ("max_tokens", 1), ("patience_ratio", 0)):
        if raw.get(key) is not None and raw[key] < low:
            kind = "a number" if key == "patience_ratio" else "an integer"
            raise ProfileError(f"{path}: field '{key}': expected {kind} >= {low}, got {raw[key]!r}")
    if raw.get("tuning", "shared") not in TUNING_SCOPES:
        raise ProfileError(f"{path}: field 'tuning': expected one of {list(TUNING_SCOPES)}, got {raw['tuning']!r}")
    return MatrixConfig.from_dict({"name": path.stem, **raw})


def check_seed(value: Any) -> int:
    """An evaluation seed: an integer in [0, TUNING_SEED_BASE) (the seeds above train tuning trials)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < TUNING_SEED_BASE:
        raise ValueError(f"expected integers in [0, {TUNING_SEED_BASE}) (seeds from {TUNING_SEED_BASE} up are "
                         f"tuning seeds), got {value!r}")
    return value


def check_seeds(values) -> tuple[int, ...]:
    """Evaluation seeds (``check_seed`` each), each given once: a repeated seed would be one cell
    counted twice."""
    seeds = tuple(check_seed(value) for value in values)
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"expected each seed once; {', '.join(map(str, repeated))} given more than once")
    return seeds


def parse_seeds(text: str) -> tuple[int, ...]:
    """``--seeds``: comma-separated integers, e.g. ``0,1,2``."""
    parts = _parts(text, "comma-separated integer seeds, e.g. 0,1,2")
    bad = [p for p in parts if not p.lstrip("-").isdigit()]
    if bad:
        raise ValueError(f"expected comma-separated integer seeds, e.g. 0,1,2; got {bad[0]!r}")
    return check_seeds(int(p) for p in parts)


def parse_rates(text: str) -> tuple[Dropout, ...]:
    """``--dropout``: comma-separated rates in [0, 1), e.g. ``0,0.3``; per-modality rates join
    ``modality=rate`` with colons, e.g. ``0,image=0.5:text=0.1`` (benchmark/run/dropout.py)."""
    return tuple(parse_dropout(part) for part in _parts(text, CLI_SYNTAX + ", e.g. 0,0.3"))


def parse_names(text: str) -> tuple[str, ...]:
    """``--datasets`` / ``--strategies``: comma-separated names, globs or (datasets) card paths."""
    return _parts(text, "comma-separated names or globs")


def parse_output_path(text: str) -> str:
    """``--summary PATH``: a file whose folder exists, checked before the run rather than after it."""
    folder = Path(text).expanduser().resolve().parent
    if not text.strip() or Path(text).is_dir():
        raise ValueError(f"expected a file path, got {text!r}")
    if not folder.is_dir():
        raise ValueError(f"folder {folder} does not exist (create it first)")
    return text


def parse_count(text: str, low: int) -> int:
    """An integer flag (trials, epochs, workers ...) that must be at least ``low``."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected an integer >= {low}, got {text!r}") from None
    if value < low:
        raise ValueError(f"expected an integer >= {low}, got {value}")
    return value


def _parts(text: str, expected: str) -> tuple[str, ...]:
    parts = tuple(part.strip() for part in text.split(","))
    if not text.strip() or any(not part for part in parts):
        raise ValueError(f"expected {expected}; got {text!r}")
    return parts


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
    if text is None or isinstance(text, tuple):  # None, or already parsed by an argparse type
        return text
    return tuple(cast(part.strip()) for part in text.split(",") if part.strip())
