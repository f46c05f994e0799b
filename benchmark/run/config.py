"""The benchmark matrix: which strategies x datasets x dropout rates x seeds, and the
budgets. Built from a YAML profile (safe loader) with the overrides of CLI flags or API keywords,
all checked by the profile model (benchmark/run/profile_model.py)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import yaml

from benchmark.inputmodel import InputProblem
from benchmark.run.dropout import CLI_SYNTAX, Dropout, read_dropout
from benchmark.run.profile_model import profile_values
from benchmark.yamlfile import YamlInputError, read_yaml
from strategies.registry import Registry

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


class ProfileError(ValueError):
    """Invalid profile: names the file and the field."""


@dataclass(frozen=True)
class MatrixConfig:
    name: str
    datasets: tuple[str, ...] = ("emoji",)
    strategies: tuple[str, ...] = ("*",)
    # A rate for every modality, or sorted ((modality, rate), ...), as the profile wrote it (0 and 0.0
    # are different matrix ids); the Plan holds them as dropout.training_rate makes them.
    dropout_rates: tuple[Dropout, ...] = (0.3,)
    seeds: tuple[int, ...] = (0,)
    trials: int = 4  # the profile's trial budget per Optuna study (the Plan's trial_slots_per_study)
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
    # how the pretrained encoders are used: "frozen", "last_block", "full"; a variant per mode (finetune_axis.py)
    finetune: tuple[str, ...] = ("frozen",)
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
    # Which independent draw of the tuning randomness (sampler and trial seeds) the studies use:
    # 0 for every ordinary matrix; `perf fidelity --noise-floor` reruns a slice with draw 1 to show
    # how far tuning luck alone moves a score (benchmark/train/seeds.py).
    tuning_draw: int = 0

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
        return cls(**{k: _frozen(v) for k, v in data.items()})

    def with_overrides(self, **overrides: Any) -> "MatrixConfig":
        """This configuration with the fields given (not None) replaced, unchecked: for values the code
        itself chose. A user's values go through ``overridden``."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def overridden(self, overrides: dict[str, Any], where: Callable[[str], str],
                   also_known: tuple[str, ...] = ()) -> "MatrixConfig":
        """This configuration with ``overrides`` (profile fields given by flags or API keywords, as a
        profile writes them; a tuple may stand for a list) checked by the profile model like a profile
        file's fields; card paths relative to the current folder. ``where(field)`` names the flag or
        keyword in the ProfileError; ``also_known``: other names the caller accepts (did you mean)."""
        plain = {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}
        values = checked_values(plain, Path.cwd(), where, also_known)
        return replace(self, **{k: _frozen(v) for k, v in values.items()})


def _frozen(value: Any) -> Any:
    """Lists (of lists) as tuples: a MatrixConfig is hashable and its JSON the same wherever it came from."""
    return tuple(_frozen(v) for v in value) if isinstance(value, (list, tuple)) else value


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
    """The profile (a name under benchmark/run/profiles/ or a YAML path), checked by the profile
    model (benchmark/run/profile_model.py); card paths in its ``datasets`` are relative to its folder."""
    path = profile_path(name_or_path)
    try:
        raw = read_yaml(path) or {}
    except FileNotFoundError:
        raise ProfileError(f"{path}: profile file does not exist") from None
    except YamlInputError as exc:
        raise ProfileError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from None
    values = checked_values(raw, path.resolve().parent, lambda name: f"{path}: field '{name}'" if name else str(path))
    return MatrixConfig.from_dict({"name": path.stem, **values})


def checked_values(raw: Any, base_dir: Path, where: Callable[[str], str],
                   also_known: tuple[str, ...] = ()) -> dict[str, Any]:
    """Profile fields ``raw`` (a profile's mapping, or the overrides of a flag or an API keyword)
    checked by the profile model and converted, with card paths in ``datasets`` made absolute
    against ``base_dir``. ``where(field)`` names the source of a bad value in the ProfileError
    (the profile file and field, the flag, the keyword)."""
    try:
        values = profile_values(raw, also_known)
    except InputProblem as exc:
        raise ProfileError(f"{where(exc.field)}: {exc.problem}") from None
    if "datasets" in values:
        from benchmark.run.card_files import normalise_entries

        values["datasets"] = list(normalise_entries(values["datasets"], base_dir, where("datasets")))
    return values


def read_integer(text: str) -> int | str:
    """The integer a flag's text spells, or the text itself, which the profile model then refuses
    in the field's own words (``--trials two``: "expected an integer >= 0 ..., got 'two'")."""
    try:
        return int(text)
    except ValueError:
        return text


def parse_seeds(text: str) -> list[int]:
    """``--seeds``: comma-separated integers, e.g. ``0,1,2`` (the profile model checks them)."""
    parts = _parts(text, "comma-separated integer seeds, e.g. 0,1,2")
    bad = [p for p in parts if not p.lstrip("-").isdigit()]
    if bad:
        raise ValueError(f"expected comma-separated integer seeds, e.g. 0,1,2; got {bad[0]!r}")
    return [int(p) for p in parts]


def parse_rates(text: str) -> list[float | dict[str, float]]:
    """``--dropout``: comma-separated rates, e.g. ``0,0.3``; per-modality rates join ``modality=rate``
    with colons, e.g. ``0,image=0.5:text=0.1`` (benchmark/run/dropout.py). As a profile writes them
    (a number or a mapping); the profile model checks them."""
    return [read_dropout(part) for part in _parts(text, CLI_SYNTAX + ", e.g. 0,0.3")]


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
    """An integer flag that is no profile field (workers, repeats, port) and must be at least ``low``;
    a profile field's flag (trials, epochs ...) is checked by the profile model."""
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
    if text is None or isinstance(text, (tuple, list)):  # None, or already parsed by an argparse type
        return None if text is None else tuple(text)
    return tuple(cast(part.strip()) for part in text.split(",") if part.strip())
