"""The Python side of ``Snex.call``: calls a function of a module by name."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

_CALL_KEY = "__snex_call__"


async def call(module: str, function: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """``module.function(*args, **kwargs)``, awaited if it returns an awaitable. The module is
    imported once (``sys.modules`` keeps it)."""
    target: Any = importlib.import_module(module)
    for name in function.split("."):
        target = getattr(target, name)
    result = target(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


async def call_in(env: dict[str, Any]) -> Any:
    """Runs the call Elixir left in `env` (and removes it from there)."""
    module, function, args, kwargs = env.pop(_CALL_KEY)
    return await call(module, function, list(args), dict(kwargs))
