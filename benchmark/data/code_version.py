"""The version of a function as its code: used for the built-in datasets' preparers, so that a
prepared copy and every result built on it change when the preparer's code does."""

from __future__ import annotations

import hashlib
import inspect
import json
import types
from typing import Any, Callable

# Functions of these packages that a function calls are part of its version (the data helpers a
# preparer uses: fetching, splitting, decoding); anything else (numpy, datasets) is a library.
OWN_PACKAGES = ("benchmark.data",)


def _is_own_function(value: Any) -> bool:
    return isinstance(value, types.FunctionType) and value.__module__.startswith(OWN_PACKAGES)


def _is_constant(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, bytes, type(None))) or (
        isinstance(value, (tuple, frozenset, list, dict)) and len(repr(value)) < 10_000)


def _names_used(code: types.CodeType) -> set[str]:
    """Global names a code object and the functions nested in it read."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_used(const)
    return names


def function_version(function: Callable) -> str:
    """sha256 of a function's source and default values and, transitively, of the functions of
    :data:`OWN_PACKAGES` it calls and the module constants they read (pinned package versions and
    digests, sizes, seeds). Changing one preparer, or a helper it uses, changes that preparer's
    version only; a comment elsewhere in its module does not."""
    code: dict[str, str] = {}
    constants: dict[str, str] = {}
    pending = [function]
    while pending:
        fn = pending.pop()
        key = f"{fn.__module__}.{fn.__qualname__}"
        if key in code:
            continue
        try:
            source = inspect.getsource(fn)
        except (OSError, TypeError):
            source = fn.__code__.co_code.hex()
        code[key] = source + repr((fn.__defaults__, fn.__kwdefaults__))
        for name in sorted(_names_used(fn.__code__) & fn.__globals__.keys()):  # attribute names are not globals
            value = fn.__globals__[name]
            if _is_own_function(value):
                pending.append(value)
            elif _is_constant(value) and not name.startswith("__"):
                constants[f"{fn.__module__}.{name}"] = repr(value)
    text = json.dumps({"code": code, "constants": constants}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
