"""The model of a profile's fields (benchmark/run/profiles/*.yaml): what each field takes, stated
once. A profile file, a `fusebench bench` flag (``--trials``, ``--seeds``, ...) and an ``api.run``
keyword are all checked by it, so the three give the same limit in the same words. It validates;
benchmark/run/config.py builds the MatrixConfig (whose defaults fill the fields a profile leaves out).

The fields are independent of each other: a flag or a keyword can be checked alone."""

from __future__ import annotations

from typing import Annotated, Any, Iterable

from pydantic import Field, StringConstraints

from benchmark.inputmodel import InputModel, InputProblem, checked_by, choice, count, expect, number, validate
from benchmark.run.dropout import dropout_value
from benchmark.run.finetune_axis import check_finetune
from benchmark.run.missing_axis import check_missing_inputs
from benchmark.train.precision import AMP_MODES
from benchmark.train.seeds import TUNING_SEED_BASE

TUNING_SCOPES = ("shared", "per_rate")


def check_seed(value: Any) -> int:
    """An evaluation seed: an integer in [0, TUNING_SEED_BASE) (the seeds above train tuning trials)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < TUNING_SEED_BASE:
        raise ValueError(f"expected integers in [0, {TUNING_SEED_BASE}) (seeds from {TUNING_SEED_BASE} up are "
                         f"tuning seeds), got {value!r}")
    return value


def check_seeds(values: Any) -> tuple[int, ...]:
    """Evaluation seeds (``check_seed`` each), each given once: a repeated seed would be one cell
    counted twice."""
    seeds = tuple(check_seed(value) for value in values)
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"expected each seed once; {', '.join(map(str, repeated))} given more than once")
    return seeds


def check_dropout_rates(entries: list) -> list:
    """Each entry checked (``dropout_value``); a mapping becomes sorted (modality, rate) pairs, a
    number stays as written (0 and 0.0 are different matrix ids)."""
    checked = []
    for entry in entries:
        value = dropout_value(entry)  # raises ValueError for a bad entry
        checked.append(value if isinstance(entry, dict) else entry)
    return checked


Name = Annotated[str, StringConstraints(pattern=r"\S")]


def _names(what: str) -> Any:
    return Annotated[list[Name], Field(min_length=1), expect(f"a list of {what} (at least one)")]


def _at_least_one(check, what: str) -> Any:
    return Annotated[list, Field(min_length=1), checked_by(check), expect(f"a list of {what} (at least one)")]


class ProfileModel(InputModel):
    name: Annotated[Name, expect("a profile name")] = None
    datasets: _names("dataset names, globs or card paths") = None
    strategies: _names("strategy names or globs") = None
    dropout_rates: _at_least_one(check_dropout_rates, "training modality-dropout rates in [0, 1): numbers (every "
                                 "modality) or mappings of modality names to rates such as "
                                 "{image: 0.5, text: 0.1}") = None
    seeds: _at_least_one(check_seeds, "integer seeds") = None
    trials: count(0, "the Optuna trial budget per study") = None
    epochs: count(1, "the epoch cap; training stops earlier on a validation plateau") = None
    patience: count(1, "epochs without a better validation score before training stops") = None
    batch_size: count(1, "the batch size") = None
    stack_seeds: Annotated[bool, expect("true or false (train the seeds of a cell as one stacked computation)")] = None
    amp: choice(AMP_MODES, "mixed precision on CUDA") = None
    missing_inputs: Annotated[Any, checked_by(check_missing_inputs)] = None
    finetune: Annotated[Any, checked_by(check_finetune)] = None
    folds: count(2, "k-fold cross-validation on every dataset instead of its fixed split") = None
    min_epochs: count(1, "the first epoch at which early stopping or the rate's decay may fire") = None
    patience_ratio: number(0, "the wait after the best epoch as a share of it; 0: always `patience`") = None
    tuning: choice(TUNING_SCOPES, "'shared': one study per dataset and strategy, tuned at the middle dropout rate; "
                                  "'per_rate': one study per training dropout rate") = None
    max_tokens: count(1, "the most tokens a token strategy sees per modality, more are pooled; null: every token",
                      nullable=True) = None
    tuning_draw: count(0, "which independent draw of the tuning randomness (sampler and trial seeds); 0 unless "
                          "measuring how far tuning luck moves a score") = None


PROFILE_FIELDS = tuple(ProfileModel.model_fields)


def profile_values(raw: Any, also_known: Iterable[str] = ()) -> dict[str, Any]:
    """The fields given in ``raw`` (a profile's mapping, or overrides of it), checked and converted
    (seeds to a tuple, per-modality dropout rates to sorted pairs, missing-input techniques to a
    tuple). Raises InputProblem naming the first bad field; ``also_known``: other names the caller
    accepts, offered by "did you mean"."""
    model = validate(ProfileModel, raw, also_known)
    return {name: getattr(model, name) for name in raw if name in model.model_fields_set}  # the given ones only


def check_field(name: str, value: Any) -> Any:
    """``value`` for profile field ``name`` (a flag's parsed value), unchanged; ValueError with the
    field's wording when the profile model refuses it."""
    try:
        profile_values({name: value})
    except InputProblem as exc:
        raise ValueError(exc.problem) from None
    return value
