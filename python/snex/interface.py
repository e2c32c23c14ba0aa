"""Python → Elixir: ``send``, ``cast`` and ``call``. They work from any thread.

In the interpreter's own event loop they are plain coroutines. From another thread, run them
on that thread's own loop (``asyncio.run(snex.call(...))``): the result is handed to the loop
that awaits it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from . import codec
from .runner import CALL, CAST, SEND, link
from .types import Atom, Term

Name = str | Atom


def _atom(name: Name) -> Atom:
    if isinstance(name, Atom):
        return name
    if isinstance(name, str):
        return Atom(name)
    raise TypeError(f"expected a str or snex.Atom name, got {type(name).__qualname__}")


def _node(node: Name | None) -> Atom | None:
    return None if node is None else _atom(node)


def _target(to: Any) -> Any:
    if isinstance(to, Term):
        return to
    if isinstance(to, tuple) and len(to) == 2:
        return (_atom(to[0]), _atom(to[1]))
    return _atom(to)


def send_now(to: Any, data: Any) -> None:
    """``send(to, data)`` on the BEAM, without awaiting (usable from synchronous code)."""
    link().write_frame(SEND, 0, codec.encode((_target(to), data)))


def cast_now(module: Name, function: Name, args: Iterable[Any], node: Name | None = None) -> None:
    """``apply(module, function, args)`` in a new BEAM process, without awaiting."""
    body = codec.encode((_atom(module), _atom(function), list(args), _node(node)))
    link().write_frame(CAST, 0, body)


async def send(to: Any, data: Any) -> None:
    """``Kernel.send(to, data)``: `to` is a pid (``snex.Term``), a name, or ``(name, node)``."""
    send_now(to, data)


async def cast(module: Name, function: Name, args: Iterable[Any], node: Name | None = None) -> None:
    """``apply(module, function, args)`` in a new BEAM process (on `node`); fire and forget."""
    cast_now(module, function, args, node)


async def call(
    module: Name,
    function: Name,
    args: Iterable[Any],
    node: Name | None = None,
    result_encoding_opts: dict[Any, Any] | None = None,
) -> Any:
    """``apply(module, function, args)`` in a new BEAM process (on `node`), returning its
    result. An Elixir raise, throw or exit raises `snex.ElixirError`.
    """
    conn = link()
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()
    opts = None
    if result_encoding_opts is not None:
        opts = {_atom(k): _atom(v) for k, v in result_encoding_opts.items()}
    body = codec.encode((_atom(module), _atom(function), list(args), _node(node), opts))
    call_id = conn.register_call(fut, loop)
    try:
        conn.write_frame(CALL, call_id, body)
        return await fut
    finally:
        conn.forget_call(call_id)
