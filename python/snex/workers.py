"""Other Python processes (multiprocessing workers, sub-servers) talking to the BEAM through
the interpreter, over any asyncio stream (a Unix socket, a TCP connection, a pipe).

In the interpreter, serve connections with ``io_loop_for_connection``::

    server = await asyncio.start_unix_server(snex.io_loop_for_connection, path=path)

In the other process (for instance a multiprocessing worker started with ``forkserver``)::

    reader, writer = await asyncio.open_unix_connection(path)
    async with snex.serve(reader, writer):
        await snex.call("erlang", "abs", [-1])

or ``await snex.serve_forever(reader, writer, on_ready=...)`` to serve until the interpreter
closes the connection. The process's ``send``, ``cast`` and ``call`` travel as frames to the
interpreter, which relays them to the BEAM (and relays call results back); they work from any
thread of that process while it serves.

``listen()`` and ``connect(address)`` are the same over a Unix socket path, for code that is not
async (``connect`` serves on a thread of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import os
import struct
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from . import codec, runner
from .runner import CALL, CALL_RESULT, CAST, SEND

_HEADER = struct.Struct(">IBQ")
_CLOSED = "the connection to the Snex interpreter is closed"


async def io_loop_for_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Relays one process's frames to the BEAM until it disconnects: the callback of
    ``asyncio.start_unix_server`` (or ``start_server``) in the interpreter."""
    conn = runner.link()
    loop = asyncio.get_running_loop()
    try:
        while True:
            length, kind, worker_id = _HEADER.unpack(await reader.readexactly(13))
            body = await reader.readexactly(length - 9)
            if kind in (CAST, SEND):
                conn.write_frame(kind, 0, body)
            elif kind == CALL:
                fut: asyncio.Future[Any] = loop.create_future()
                call_id = conn.register_call(fut, loop)
                fut.add_done_callback(functools.partial(_relay_result, writer, worker_id))
                conn.write_frame(CALL, call_id, body)
            else:
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _relay_result(writer: asyncio.StreamWriter, worker_id: int, fut: asyncio.Future[Any]) -> None:
    if fut.cancelled() or writer.is_closing():
        return
    exc = fut.exception()
    outcome = (False, str(exc)) if exc is not None else (True, fut.result())
    body = codec.encode(outcome)
    writer.write(_HEADER.pack(9 + len(body), CALL_RESULT, worker_id) + body)


class StreamLink:
    """This process's link to the BEAM through a stream connected to an interpreter."""

    def __init__(self, writer: asyncio.StreamWriter, loop: asyncio.AbstractEventLoop) -> None:
        """Writes frames to `writer`, on `loop` (the loop that serves the connection)."""
        self.pid = os.getpid()
        self.takes_buffers = False
        self.calls = runner.CallTable()
        self._writer = writer
        self._loop = loop
        self._closed = False

    def write_frame(
        self, kind: int, req_id: int, body: bytes = b"", out_of_band: Sequence[memoryview] = ()
    ) -> None:
        """Writes one frame; safe from any thread (other threads hand it to the loop). The
        frames of a worker carry no out-of-band buffers (`takes_buffers` is false)."""
        if out_of_band:
            raise ValueError("a worker's frames carry no out-of-band buffers")
        if self._closed:
            raise RuntimeError(_CLOSED)
        data = _HEADER.pack(9 + len(body), kind, req_id) + body
        if asyncio._get_running_loop() is self._loop:
            self._writer.write(data)
        else:
            self._loop.call_soon_threadsafe(self._write, data)

    def _write(self, data: bytes) -> None:
        if not self._writer.is_closing():
            self._writer.write(data)

    def register_call(self, fut: asyncio.Future[Any], loop: asyncio.AbstractEventLoop) -> int:
        """Registers a future for a call's result before the call is written."""
        return self.calls.register(fut, loop)

    def forget_call(self, call_id: int) -> None:
        """Drops a call whose caller is gone (or that got its result)."""
        self.calls.forget(call_id)

    def settle(self, call_id: int, body: bytes) -> None:
        """Resolves a call with the result the interpreter relayed."""
        self.calls.settle_encoded(call_id, body)

    def close(self) -> None:
        """Stops writing; calls still waiting fail with `snex.ElixirError`."""
        self._closed = True
        self.calls.fail_all(_CLOSED)


async def _read_results(reader: asyncio.StreamReader, link: StreamLink) -> None:
    """Reads call results until the interpreter closes the connection."""
    try:
        while True:
            length, kind, call_id = _HEADER.unpack(await reader.readexactly(13))
            body = await reader.readexactly(length - 9)
            if kind == CALL_RESULT:
                link.settle(call_id, body)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass


def _check_not_running() -> None:
    try:
        runner.link()
    except RuntimeError:
        return  # neither the interpreter nor serving: free to serve
    raise RuntimeError("Snex is already running!")


@contextlib.asynccontextmanager
async def _serving(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> AsyncIterator[asyncio.Future[None]]:
    """This process's link through `reader`/`writer` while the block runs, and the task that
    reads call results (it ends at EOF); afterwards the task is cancelled, calls still waiting
    fail and the process has no link."""
    _check_not_running()
    link = StreamLink(writer, asyncio.get_running_loop())
    runner.set_link(link)
    try:
        reading = asyncio.ensure_future(_read_results(reader, link))
        try:
            yield reading
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
    finally:
        link.close()
        runner.set_link(None)


@contextlib.asynccontextmanager
async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> AsyncIterator[None]:
    """Inside the block, ``snex.send``, ``cast`` and ``call`` of this process go through the
    interpreter at the other end of `reader`/`writer` (served there by
    ``io_loop_for_connection``). Raises ``RuntimeError("Snex is already running!")`` when this
    process already serves, or is an interpreter. The stream stays open after the block."""
    async with _serving(reader, writer):
        yield


async def serve_forever(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    on_ready: Callable[[], Any] | None = None,
) -> None:
    """Serves like `serve` until the interpreter closes the connection (EOF). `on_ready` is
    called once ``send``, ``cast`` and ``call`` work; if it returns an awaitable, that is
    awaited while serving (its exception ends serving and is raised here)."""
    async with _serving(reader, writer) as reading:
        if on_ready is not None:
            result = on_ready()
            if inspect.isawaitable(result):
                await result
        await reading


async def listen(path: str | None = None) -> str:
    """In the interpreter: serves ``io_loop_for_connection`` on a Unix socket at `path` (a new
    temporary one by default); returns the path, for `connect`."""
    if path is None:
        path = os.path.join(tempfile.mkdtemp(prefix="snex-"), "workers.sock")
    await asyncio.start_unix_server(io_loop_for_connection, path=path)
    return path


def connect(address: str) -> None:
    """In another process: `serve_forever` over the Unix socket `address` (from `listen`), on a
    thread of its own, so that synchronous code can use ``asyncio.run(snex.call(...))``.
    Returns once serving; raises what stopped it from serving."""
    ready = threading.Event()
    failure: list[BaseException] = []

    async def run() -> None:
        reader, writer = await asyncio.open_unix_connection(address)
        try:
            await serve_forever(reader, writer, on_ready=ready.set)
        finally:
            writer.close()

    def thread_main() -> None:
        try:
            asyncio.run(run())
        except BaseException as e:  # noqa: BLE001 - handed to the caller of connect
            failure.append(e)
        finally:
            ready.set()

    threading.Thread(target=thread_main, name="snex-link", daemon=True).start()
    ready.wait()
    if failure:
        raise failure[0]
