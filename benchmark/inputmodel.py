"""The ground of fusebench's input models (dataset cards, profiles, the flags and API keywords that
override a profile): pydantic models that are strict (no coercion: `1` is not `true`, "3" is not 3)
and refuse unknown fields, the field types that state each limit once (``count(1, ...)`` is both the
check and its wording), and the translation of a pydantic ValidationError into what fusebench
prints: the field's path (``source.hub.revision``, ``modalities.text.missing``) and one problem.

Every leaf field carries its expectation (``expect``), so a wrong type or an out-of-range value reads
"expected <what the field takes>, got <value>" wherever it came from (a YAML file, a flag, a keyword),
never pydantic's own wording."""

from __future__ import annotations

from typing import Annotated, Any, Callable, Iterable, TypeVar

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, WrapValidator,
                      model_validator)
from pydantic_core import PydanticCustomError

from benchmark.yamlfile import did_you_mean

# The error type of the problems worded here; pydantic's own errors are reworded by ``expect``.
PROBLEM = "fusebench_problem"
# Validation context key: more names the caller accepts beside the model's fields (the API's `device`,
# `plugins`), offered by "did you mean" and listed with the fields.
ALSO_KNOWN = "also_known"


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


# The default of a required field: validated (``validate_default``), so ``expect`` words its absence.
MISSING: Any = _Missing()


class InputProblem(ValueError):
    """The first problem of an input: ``field``, the path of the field ("" for the input as a whole),
    and ``problem``, what is wrong ("unknown field (did you mean 'label'?) ...", "expected ..., got ...")."""

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"field '{field}': {problem}" if field else problem)


def problem(message: str, field: str = "") -> PydanticCustomError:
    """The error a validator raises: ``message`` as fusebench prints it; ``field`` (a path below the
    validated value) names the field when a model-level check raises it."""
    return PydanticCustomError(PROBLEM, "{message}", {"message": message, "field": field})


class InputModel(BaseModel):
    """A strict model of a mapping a user writes: unknown fields are refused with the closest valid
    name (``extra="forbid"``; a subclass that takes free-form options sets ``extra="allow"``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _a_mapping_of_known_fields(cls, data: Any, info: ValidationInfo) -> Any:
        known = list(cls.model_fields) + list((info.context or {}).get(ALSO_KNOWN, ()))
        if not isinstance(data, dict):
            raise problem(f"expected a mapping of fields ({', '.join(known)}), got {data!r}")
        if cls.model_config.get("extra") == "forbid":
            for key in data:
                if key not in cls.model_fields and key not in known:
                    raise PydanticCustomError(PROBLEM, "{message}", {
                        "message": f"unknown field{did_you_mean(key, known)}; expected one of: {', '.join(known)}",
                        "field": str(key), "unknown": True})
        cls.check_mapping(data)
        return data

    @classmethod
    def check_mapping(cls, data: dict) -> None:
        """Checks of the mapping as written, before its fields are validated (raise ``problem``)."""


def required() -> Any:
    """The default of a field that must be given: its absence is worded by the field's ``expect``."""
    return Field(default=MISSING, validate_default=True)


def expect(description: str) -> WrapValidator:
    """Word every error of the annotated field as "expected <description>, got <value>" (its absence:
    "is missing; expected <description>"). Problems already worded here (a nested model's fields,
    ``checked_by``) pass through with their own paths."""
    def check(value: Any, handler: Callable[[Any], Any]) -> Any:
        if value is MISSING:
            raise problem(f"is missing; expected {description}")
        try:
            return handler(value)
        except ValidationError as exc:
            if any(error["type"] == PROBLEM for error in exc.errors()):
                raise
            raise problem(f"expected {description}, got {value!r}") from None

    return WrapValidator(check)


def checked_by(check: Callable[[Any], Any]) -> AfterValidator:
    """A field checked by ``check`` (value -> value, raising ValueError with fusebench's wording), a
    rule shared with code outside the models (seeds, dropout rates, missing-input techniques)."""
    def run(value: Any) -> Any:
        try:
            return check(value)
        except ValueError as exc:
            raise problem(str(exc)) from None

    return AfterValidator(run)


def count(low: int, what: str, nullable: bool = False) -> Any:
    """An integer field >= ``low`` (``null`` too when ``nullable``): the limit and its wording, once."""
    description = f"an integer >= {low}{' or null' if nullable else ''} ({what})"
    number = Annotated[int, Field(ge=low)]
    return Annotated[number | None if nullable else number, expect(description)]


def number(low: float, what: str) -> Any:
    """A number field (an integer stays an integer: the matrix id holds the value as written) >= ``low``."""
    description = f"a number >= {low} ({what})"

    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= low:  # NaN: not >= low
            raise ValueError(f"expected {description}, got {value!r}")
        return value

    return Annotated[Any, checked_by(check)]


def choice(options: Iterable[str], what: str) -> Any:
    """A field that is one of ``options``."""
    options = list(options)

    def check(value: Any) -> Any:
        if not isinstance(value, str) or value not in options:
            raise ValueError(f"expected one of {options} ({what}), got {value!r}")
        return value

    return Annotated[Any, checked_by(check)]


Model = TypeVar("Model", bound=BaseModel)


def validate(model: type[Model], data: Any, also_known: Iterable[str] = ()) -> Model:
    """``data`` validated by ``model``; raises InputProblem naming the first problem (an unknown
    field first: a misspelt field often leaves a required one missing, and the misspelling is the
    news)."""
    try:
        return model.model_validate(data, context={ALSO_KNOWN: tuple(also_known)})
    except ValidationError as exc:
        errors = exc.errors()
        first = next((e for e in errors if (e.get("ctx") or {}).get("unknown")), errors[0])
        raise first_problem(first) from None


def first_problem(error: dict) -> InputProblem:
    """The InputProblem of one pydantic error: its path (``loc`` and the field a model-level check
    named) and its message."""
    context = error.get("ctx") or {}
    parts = [*error["loc"], *(part for part in str(context.get("field", "")).split(".") if part)]
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    message = context["message"] if error["type"] == PROBLEM else f"{error['msg']}, got {error.get('input')!r}"
    return InputProblem(path, message)
