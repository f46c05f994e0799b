"""A small generic name -> object registry used for strategies, encoders and datasets."""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """Raised for duplicate registrations and unknown names."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly instead.
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Maps names to objects. Duplicate names raise; unknown names list close matches."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form: ``@registry.register("name")``."""

        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        if not name or not isinstance(name, str):
            raise RegistryError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            existing = self._entries[name]
            raise RegistryError(
                f"{self.kind} {name!r} is already registered (by {_describe(existing)}); "
                f"cannot register {_describe(obj)} under the same name"
            )
        self._entries[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            known = ", ".join(sorted(self._entries)) or "(none registered)"
            raise RegistryError(f"unknown {self.kind} {name!r}.{hint} Known {self._plural()}: {known}") from None

    def _plural(self) -> str:
        """``strategy`` -> ``strategies``, ``encoder`` -> ``encoders``."""
        return self.kind[:-1] + "ies" if self.kind.endswith("y") else self.kind + "s"

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return [(name, self._entries[name]) for name in self.names()]

    def remove(self, name: str) -> None:
        """Remove an entry (used by tests that register temporary strategies)."""
        self._entries.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


def _describe(obj: object) -> str:
    module = getattr(obj, "__module__", "?")
    qualname = getattr(obj, "__qualname__", type(obj).__name__)
    return f"{module}.{qualname}"
