"""A small name -> factory registry, the way timm registers models.

An entry's name is written once: ``@REG.register`` takes it from the entry itself (a class's
``name`` attribute, else the function's or class's ``__name__``; a function loses the registry's
``prefix``: ``Registry("dataset", prefix="load_")`` keys ``def load_casme2`` as ``casme2``);
``@REG.register("timm")`` names it explicitly only where the entry's own name cannot be the key. Config nodes name their entry in
``name`` and carry its parameters beside it; ``REG.build(node, **fixed)`` is the one place that
splits such a node ("pop ``name``, pass the rest").
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Any, Callable, Iterable, Mapping


class UnknownNameError(KeyError):
    """An unknown registry name; the message lists what exists."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it readable
        return str(self.args[0])


def split_node(node: Mapping[str, Any]) -> tuple[str, dict]:
    """A config node ``{name: ..., **params}`` -> ``(name, params)``; a KeyError names what is missing."""
    params = dict(node)
    if "name" not in params:
        raise KeyError(f"config node has no 'name' (keys: {', '.join(sorted(map(str, params))) or 'none'})")
    return str(params.pop("name")), params


def import_plugins(package: str, path: Iterable[str]) -> None:
    """Import every module of a plugin package (benchopt-style discovery), so that a new plugin is
    one file that registers itself on import, with no list to extend. Modules whose names start with
    ``_`` (helpers, ``__main__``) are not imported."""
    for m in pkgutil.iter_modules(path):
        if not m.name.startswith("_"):
            importlib.import_module(f"{package}.{m.name}")


def _own_name(obj: Any) -> str:
    name = getattr(obj, "name", None) if isinstance(obj, type) else None
    return name if isinstance(name, str) and name else obj.__name__


class Registry:
    def __init__(self, kind: str, prefix: str = ""):
        self.kind = kind
        self.prefix = prefix  # dropped from a function's __name__ to make its key (load_casme2 -> casme2)
        self._entries: dict[str, Callable[..., Any]] = {}

    def key_of(self, obj: Any) -> str:
        """The key an entry registers under when its decorator names none."""
        name = _own_name(obj)
        if self.prefix and not isinstance(obj, type) and name.startswith(self.prefix) and name != self.prefix:
            return name[len(self.prefix):]
        return name

    def register(self, name: str | Callable[..., Any] | None = None):
        """Decorator: ``@register`` (the entry's own name) or ``@register("key")``."""
        if callable(name):  # used bare: @register
            return self._add(self.key_of(name), name)

        def deco(fn):
            return self._add(name or self.key_of(fn), fn)

        return deco

    def _add(self, key: str, fn):
        if key in self._entries and self._entries[key] is not fn:
            raise ValueError(f"{self.kind} {key!r} is registered twice")
        own = getattr(fn, "name", None) if isinstance(fn, type) else None
        if isinstance(own, str) and own and own != key:
            raise ValueError(f"{self.kind} {key!r}: class attribute name={own!r} disagrees with its registry key")
        self._entries[key] = fn
        return fn

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._entries:
            close = difflib.get_close_matches(name, self.names(), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{hint} Available: {', '.join(self.names())}"
            )
        return self._entries[name]

    def build(self, node: Mapping[str, Any], **fixed: Any) -> Any:
        """Build the entry a config node names, with its parameters and the caller's ``fixed`` ones."""
        name, params = split_node(node)
        return self.get(name)(**params, **fixed)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self):
        """The keys in registration order (``names()`` sorts them)."""
        return iter(list(self._entries))
