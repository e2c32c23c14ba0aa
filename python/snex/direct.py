"""The Python side of ``Snex.call``: finds a function of a module by name (the runner calls it
for ``CALL_FN`` frames)."""

from __future__ import annotations

import importlib
from typing import Any


def lookup(module: str, function: str) -> Any:
    """``module.function`` (`function` may be dotted, e.g. ``"date.fromisoformat"``); the
    module is imported once (``sys.modules`` keeps it)."""
    target: Any = importlib.import_module(module)
    for name in function.split("."):
        target = getattr(target, name)
    return target
