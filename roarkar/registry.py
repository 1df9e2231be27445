"""One small name -> object registry for every axis (methods, models, dataset kinds, protocols,
tables): ``register`` adds under a unique name, ``get`` looks one up and names the registered ones
(with the nearest as a "did you mean") when it is unknown. Bottom layer: no roarkar imports.

Importing a module that defines entries registers them (timm's rule); nothing else happens on
import.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownName(KeyError, ValueError):
    """A name not in a registry; its message names the key, the nearest and every registered name.

    A ``ValueError`` too, so that callers that refused bad values with ``ValueError`` keep doing so.
    """

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Registered objects of one kind, by name, in registration order.

    ``kind`` names the axis in errors ("model", "dataset kind", ...); ``key`` the config key the
    name usually comes from ("model.name"), so an error says which setting was wrong.
    """

    def __init__(self, kind: str, key: str | None = None) -> None:
        self.kind = kind
        self.key = key
        self._entries: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """``registry.register("name", obj)``, or ``@registry.register("name")`` as a decorator.
        A name registered twice is an error (two owners of one name)."""

        def add(value: T) -> T:
            if not isinstance(name, str) or not name:
                raise ValueError(f"a {self.kind} needs a non-empty string name, got {name!r}")
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = value
            return value

        return add if obj is None else add(obj)

    def get(self, name: str, *, key: str | None = None) -> T:
        """The object registered as ``name``; unknown: :class:`UnknownName` naming the key (``key``
        or the registry's), the nearest names and every registered one."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownName(self.unknown_message(name, key=key)) from None

    def unknown_message(self, name: object, *, key: str | None = None) -> str:
        setting = key or self.key
        where = f"{setting}={name!r}" if setting else repr(name)
        close = difflib.get_close_matches(str(name), list(self._entries), n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        known = ", ".join(self._entries) or "none"
        return f"{where} is not a known {self.kind}{hint}; registered: {known}"

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()!r})"
