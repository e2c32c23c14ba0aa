"""Markers that appear as pickle globals on the wire (see docs/protocol.md).

Rust recognises ``atom``, ``term`` and ``value`` by name in what Python sends; Python calls
``make_object`` when unpickling what Elixir sends (``Snex.Serde.object/3``).
"""

from __future__ import annotations

import importlib
from typing import Any

from .types import Atom, Term


def atom(name: str) -> Atom:
    """The atom `name`."""
    return Atom(name)


def term(etf: bytes) -> Term:
    """An opaque term."""
    return Term(etf)


def value(x: Any) -> Any:
    """The value itself (a subclass of a built-in type travels as its base type)."""
    return x


def make_object(module: str, name: str, args: Any) -> Any:
    """``module.name(*args)``; `name` may be dotted."""
    obj: Any = importlib.import_module(str(module))
    for part in str(name).split("."):
        obj = getattr(obj, part)
    return obj(*args)
