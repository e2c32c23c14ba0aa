"""Snex: the Python side of Elixir's Snex.

Every environment has this package as ``snex`` and its module proxy as ``Elixir``.
"""

# ruff: noqa: E402
from ._python_version import check as _check_python_version

_check_python_version()

# The rest is imported only once the Python is known to be recent enough.
from . import code, direct, runner, streams
from .codec import set_custom_encoder
from .encoding import EncodingOpt, EncodingOpts
from .interface import call, cast, send
from .logging_handler import LoggingHandler
from .proxy import BeamModuleProxy, Elixir
from .types import Atom, DistinctAtom, ElixirError, EncodeError, Term
from .workers import connect, io_loop_for_connection, listen, serve, serve_forever

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
