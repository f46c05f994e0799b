"""The strategy zoo's discovery. Every module in this package is imported on first use, so a
new strategy is one file and one decorator (``@register_strategy``, from ``strategies.registration``,
the module that holds the registry). Third-party strategies come from a plugin file
(``--plugin my_fusion.py``) or the ``fusebench.strategies`` entry-point group.

Importing this package does not import torch (``strategies.registry`` is used where torch
is not installed, e.g. to rebuild a report): the strategy modules load on first use."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from importlib.metadata import entry_points
from pathlib import Path

from typing import TYPE_CHECKING

from strategies.registration import STRATEGIES, register_strategy  # re-exported: plugins import them from here
from strategies.registry import Registry

if TYPE_CHECKING:
    from strategies.base import FusionStrategy

ENTRY_POINT_GROUP = "fusebench.strategies"
# Modules of this package that hold no strategy, so discover() does not import them as strategies.
_INFRASTRUCTURE = {"base", "positions", "registration", "registry", "search_space"}
_discovered = False


def discover() -> Registry[type[FusionStrategy]]:
    """Import every built-in strategy module and every entry-point plugin (once)."""
    global _discovered
    if not _discovered:
        _discovered = True
        for info in pkgutil.iter_modules(__path__):
            if info.name not in _INFRASTRUCTURE:
                importlib.import_module(f"{__name__}.{info.name}")
        load_entry_point_plugins()
    return STRATEGIES


def load_entry_point_plugins() -> list[str]:
    """Import every module advertised in the ``fusebench.strategies`` entry-point group so that
    its ``@register_strategy`` decorators run. Returns the entry-point names loaded."""
    loaded = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:
            raise ImportError(
                f"cannot load strategy plugin entry point {ep.name!r} = {ep.value!r} "
                f"(group {ENTRY_POINT_GROUP!r}): {exc}"
            ) from exc
        loaded.append(ep.name)
    return loaded


def load_plugin(path: str | Path) -> None:
    """Import a user's Python file so that its ``@register_strategy`` decorators run."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"strategy plugin file not found: {path}")
    module_name = f"fusebench_plugin_{path.stem}"
    if module_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import strategy plugin {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)


def __getattr__(name: str):
    """``from strategies import FusionStrategy`` imports the base module (and torch) on use."""
    if name in ("FusionStrategy", "AuxiliaryLogits", "FAMILIES"):
        from strategies import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_strategy(name: str) -> type[FusionStrategy]:
    return discover().get(name)


__all__ = ["STRATEGIES", "FusionStrategy", "AuxiliaryLogits", "register_strategy", "discover", "load_entry_point_plugins", "load_plugin", "get_strategy"]
