"""The strategy registry and its decorator: ``STRATEGIES`` and ``@register_strategy``.

Every strategy module imports its decorator from here, never from the ``strategies`` package,
whose ``discover()`` imports the strategy modules: so no strategy imports the module that imports
it. ``from strategies import register_strategy`` keeps working (the package re-exports both).

This module does not import torch: ``strategies.base`` is imported when a class is decorated."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strategies.registry import Registry

if TYPE_CHECKING:
    from strategies.base import FusionStrategy

STRATEGIES: Registry[type["FusionStrategy"]] = Registry("strategy")


def register_strategy(name: str):
    """Class decorator: ``@register_strategy("harmonic")`` adds a FusionStrategy subclass."""

    def decorator(cls: type[FusionStrategy]) -> type[FusionStrategy]:
        from strategies.base import FAMILIES, FusionStrategy

        if not (isinstance(cls, type) and issubclass(cls, FusionStrategy)):
            raise TypeError(f"@register_strategy({name!r}) must decorate a FusionStrategy subclass, got {cls!r}")
        if cls.family not in FAMILIES:
            raise ValueError(f"strategy {name!r} has family {cls.family!r}; expected one of {FAMILIES}")
        if not cls.description or not cls.paper:
            raise ValueError(f"strategy {name!r} must set a one-line `description` and the `paper` it comes from")
        STRATEGIES.add(name, cls)
        cls.name = name
        return cls

    return decorator
