"""Explicit registries: a duplicate name raises, an unknown name lists the known ones."""
from __future__ import annotations

import difflib
from typing import Generic, Iterator, TypeVar

from .ir.errors import UnknownNameError

T = TypeVar("T")

# What people type for a format (`--to pytorch`, `import tensorflow ...`), any case.
FORMAT_ALIASES = {"pt": ("pytorch", "torch", "safetensors", "hf"), "tf2": ("tensorflow", "tf", "h5"),
                  "tf1": ("tf-checkpoint", "ckpt"), "keras": ("tf-keras", "tf_keras", "keras2")}


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}      # lowercase alias -> name

    def alias(self, alias: str, name: str) -> None:
        """Another name people type for `name` (`--to pytorch` for pt), case-insensitive."""
        if name not in self._items:
            raise ValueError(f"alias {alias!r} of unknown {self.kind} {name!r}")
        self._aliases[alias.lower()] = name

    def alias_formats(self) -> None:
        """The format names people type (--to pytorch), for the formats registered here."""
        for name, aliases in FORMAT_ALIASES.items():
            if name in self._items:
                for alias in aliases:
                    self.alias(alias, name)

    def resolve(self, name: str) -> str:
        """The registered name `name` stands for (itself, any case, or an alias)."""
        if name in self._items:
            return name
        lowered = name.lower() if isinstance(name, str) else name
        for known in self._items:
            if known.lower() == lowered:
                return known
        if lowered in self._aliases:
            return self._aliases[lowered]
        close = difflib.get_close_matches(lowered, [*self._items, *self._aliases], n=1, cutoff=0.6) \
            if isinstance(lowered, str) else []
        hint = f"; did you mean {self._aliases.get(close[0], close[0])!r}?" if close else ""
        raise UnknownNameError(f"unknown {self.kind} {name!r}{hint} (known: {', '.join(self.names())})")

    def add(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._items[name] = item
        return item

    def register(self, cls):
        """Class decorator: registers an instance under `cls.name`."""
        self.add(cls.name, cls())
        return cls

    def get(self, name: str) -> T:
        return self._items[self.resolve(name)]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(self._items[n] for n in self.names())
