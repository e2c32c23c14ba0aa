"""Python → Elixir: ``send``, ``cast`` and ``call``. They work from any thread.

In the interpreter's own event loop they are plain coroutines. From another thread, run them
on that thread's own loop (``asyncio.run(snex.call(...))``): the result is handed to the loop
that awaits it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import buffers, codec
from .runner import CALL, CAST, SEND, Link, link
from .types import Atom, Term

if TYPE_CHECKING:
    from .encoding import EncodingOpts

Name = str | Atom

# How encode errors name the parts of a CALL or CAST body (`args[2]['x']`).
_CALL_NAMES = ("module", "function", "args", "node", "result_encoding_opts")


def _atom(name: Name) -> Atom:
    if isinstance(name, Atom):
        return name
    if isinstance(name, str):
        return Atom(name)
    raise TypeError(f"expected a str or snex.Atom name, got {type(name).__qualname__}")


def _node(node: Name | Term | None) -> Atom | Term | None:
    if node is None or isinstance(node, Term):
        return node
    return _atom(node)


def _target(to: Any) -> Any:
    """`to` as ``Kernel.send/2`` takes it once decoded: a pid (``snex.Term``), a registered
    name, or ``(name, node)`` with the node a ``snex.Term``, an ``Atom`` or a ``str``."""
    if isinstance(to, Term):
        return to
    if isinstance(to, tuple) and len(to) == 2:
        name, node = to
        return (_atom(name), node if isinstance(node, Term) else _atom(node))
    if isinstance(to, str):
        return _atom(to)
    raise TypeError(
        "snex.send needs a pid (snex.Term), a registered name (snex.Atom or str) or "
        f"a (name, node) tuple, got {type(to).__qualname__}"
    )


def _large_bytes_apart(value: Any) -> Any:
    """`value`, but as a `memoryview` if it is large ``bytes`` or a ``bytearray``: the same
    binary for Elixir, sent out of band (the pickler keeps ``bytes`` found inside a tuple)."""
    if buffers.is_large_binary(value):
        return memoryview(value)
    return value


def _args(args: Iterable[Any]) -> list[Any]:
    return [_large_bytes_apart(a) for a in args]


def _encode(conn: Link, value: Any, root: Sequence[str]) -> tuple[bytes, list[memoryview]]:
    """`value` encoded for `conn`: the pickle, and its out-of-band buffers if `conn` takes
    them."""
    out_of_band: list[memoryview] | None = [] if conn.takes_buffers else None
    return codec.encode(value, root=root, out_of_band=out_of_band), out_of_band or []


def _write(conn: Link, kind: int, req_id: int, value: Any, root: Sequence[str]) -> None:
    """Encodes `value` and writes it as a frame."""
    conn.write_frame(kind, req_id, *_encode(conn, value, root))


def send_now(to: Any, data: Any) -> None:
    """``send(to, data)`` on the BEAM, without awaiting (usable from synchronous code)."""
    _write(link(), SEND, 0, (_target(to), _large_bytes_apart(data)), ("to", "data"))


def cast_now(
    module: Name, function: Name, args: Iterable[Any], node: Name | Term | None = None
) -> None:
    """``apply(module, function, args)`` in a new BEAM process, without awaiting."""
    value = (_atom(module), _atom(function), _args(args), _node(node))
    _write(link(), CAST, 0, value, _CALL_NAMES[:4])


async def send(to: Any, data: Any) -> None:
    """``Kernel.send(to, data)``: `to` is a pid (``snex.Term``), a registered name (``Atom``
    or ``str``), or ``(name, node)`` with the node a ``snex.Term``, an ``Atom`` or a ``str``."""
    send_now(to, data)


async def cast(
    module: Name, function: Name, args: Iterable[Any], node: Name | Term | None = None
) -> None:
    """``apply(module, function, args)`` in a new BEAM process (on `node`); fire and forget."""
    cast_now(module, function, args, node)


async def call(
    module: Name,
    function: Name,
    args: Iterable[Any],
    node: Name | Term | None = None,
    result_encoding_opts: EncodingOpts | Mapping[str, Any] | None = None,
) -> Any:
    """``apply(module, function, args)`` in a new BEAM process (on `node`), returning its
    result. An Elixir raise, throw or exit raises `snex.ElixirError`.

    `result_encoding_opts` (``snex.EncodingOpts``, or a dict of strings) override the
    interpreter's encoding options for the result.
    """
    opts = None
    if result_encoding_opts is not None:
        from . import encoding  # imported when first needed: start-up does not pay for it

        opts = encoding.to_wire(result_encoding_opts)
    conn = link()
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()
    value = (_atom(module), _atom(function), _args(args), _node(node), opts)
    body, out_of_band = _encode(conn, value, _CALL_NAMES)
    call_id = conn.register_call(fut, loop)
    try:
        conn.write_frame(CALL, call_id, body, out_of_band)
        return await fut
    finally:
        conn.forget_call(call_id)
