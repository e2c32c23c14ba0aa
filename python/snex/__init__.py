"""Snex: the Python side of Elixir's Snex.

Every environment has this package as ``snex`` and its module proxy as ``Elixir``.

What an interpreter needs to serve its first request is imported with the package; the rest
(`LoggingHandler`, the `EncodingOpt`/`EncodingOpts` names, the worker-process functions) is
imported the first time it is used, so that start-up does not pay for it (see "Start-up" in
docs/decisions.md). ``from snex import LoggingHandler`` and ``snex.LoggingHandler`` work alike.
"""

# ruff: noqa: E402
from ._python_version import check as _check_python_version

_check_python_version()

# The rest is imported only once the Python is known to be recent enough.
import importlib as _importlib
import typing as _typing

from . import code, direct, runner, streams
from .codec import set_custom_encoder
from .interface import call, cast, send
from .proxy import BeamModuleProxy, Elixir
from .types import Atom, DistinctAtom, ElixirError, EncodeError, Term

if _typing.TYPE_CHECKING:
    from .encoding import EncodingOpt, EncodingOpts
    from .logging_handler import LoggingHandler
    from .workers import connect, io_loop_for_connection, listen, serve, serve_forever

#: The names imported on first use, and their modules.
_LAZY = {
    "EncodingOpt": "encoding",
    "EncodingOpts": "encoding",
    "LoggingHandler": "logging_handler",
    "connect": "workers",
    "io_loop_for_connection": "workers",
    "listen": "workers",
    "serve": "workers",
    "serve_forever": "workers",
}


def __getattr__(name: str) -> _typing.Any:
    """Imports the module of a name of `_LAZY` on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'snex' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The package's names, the ones imported on first use included."""
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Atom",
    "BeamModuleProxy",
    "DistinctAtom",
    "Elixir",
    "ElixirError",
    "EncodeError",
    "EncodingOpt",
    "EncodingOpts",
    "LoggingHandler",
    "Term",
    "call",
    "cast",
    "code",
    "connect",
    "direct",
    "io_loop_for_connection",
    "listen",
    "runner",
    "send",
    "serve",
    "serve_forever",
    "set_custom_encoder",
    "streams",
]
