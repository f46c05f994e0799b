"""The options an encoder takes, read from its constructor's signature (keyword parameters), and
the check of a card's options against them: an unknown option (``standardise`` for
``standardize``) is refused with the closest valid name, not ignored. Nothing is listed by hand:
adding a keyword parameter to an encoder's ``__init__`` adds the option."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

from benchmark.yamlfile import did_you_mean

# Filled in by get_encoder from the encoder's name (``hf-text:<model id>``), never written as an option.
NAME_PARTS = ("model_id",)


class EncoderOptionError(ValueError):
    """A card's options do not fit the encoder. ``option``: the card field at fault (an option
    name, or ``column`` / ``columns``)."""

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        super().__init__(message)


def constructor_options(factory: Callable[..., Any]) -> dict[str, inspect.Parameter] | None:
    """Option name -> parameter of the encoder ``factory`` (a class: its ``__init__``, following
    ``**kwargs`` that a constructor hands on to its parent's). None: it takes any keyword."""
    functions = ([k.__dict__["__init__"] for k in factory.__mro__ if "__init__" in k.__dict__ and k is not object]
                 if isinstance(factory, type) else [factory])
    options: dict[str, inspect.Parameter] = {}
    for function in functions:
        takes_more = False
        for parameter in inspect.signature(function).parameters.values():
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                takes_more = True
            elif parameter.kind is inspect.Parameter.KEYWORD_ONLY or (
                    parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and parameter.name != "self"):
                options.setdefault(parameter.name, parameter)
        if not takes_more:
            return options
    return None


def check_options(name: str, factory: Callable[..., Any], options: Mapping[str, Any]) -> None:
    """Raise EncoderOptionError when ``options`` (as a card gives them, without ``missing``) do not
    fit encoder ``name``: an option it does not take, or one it needs that is not given. Columns
    are worded as the card writes them: an encoder that needs ``columns`` (tabular) was given
    ``column:``; one without a ``columns`` parameter reads a single ``column:``."""
    accepted = constructor_options(factory)
    if accepted is None:
        return
    if ":" in name:  # a prefix encoder (hf-text:<model id>): its model id comes from the name
        for part in NAME_PARTS:
            if part in options:
                raise EncoderOptionError(part, f"encoder {name!r}: the {part} is part of the encoder's name "
                                               f"('{name.split(':')[0]}:<{part}>'); remove the option")
        accepted = {k: v for k, v in accepted.items() if k not in NAME_PARTS}
    given = set(options)
    if "columns" in given and "columns" not in accepted:
        raise EncoderOptionError("columns", f"encoder {name!r} reads one column: give 'column: <name>' (declare one "
                                            "modality per column), not 'columns: [...]'")
    for option in sorted(given):
        if option not in accepted:
            notes = getattr(factory, "option_notes", {})
            raise EncoderOptionError(option, f"encoder {name!r} has no option {option!r}"
                                             f"{did_you_mean(option, accepted)}; "
                                             + (notes[option] if option in notes else _options_phrase(accepted)))
    for option, parameter in accepted.items():
        if parameter.default is inspect.Parameter.empty and option not in options:
            if option == "columns":
                raise EncoderOptionError("column", f"encoder {name!r} reads several columns: expected "
                                                   "'columns: [a, b, ...]' (a list of column names), not 'column:'")
            raise EncoderOptionError(option, f"encoder {name!r} needs the option {option!r}")


def _options_phrase(accepted: Mapping[str, Any]) -> str:
    names = [n for n in accepted if n != "columns"]
    return f"its options: {', '.join(sorted(names))}" if names else "it takes no options"
