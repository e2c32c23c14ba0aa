"""Other Python processes (multiprocessing workers, sub-servers) talking to the BEAM through
the interpreter.

In the interpreter::

    address = await snex.serve()            # a Unix socket, served on the interpreter's loop

In a worker process (spawn or forkserver)::

    snex.connect(address)
    asyncio.run(snex.call("erlang", "abs", [-1]))

The worker's ``send``, ``cast`` and ``call`` travel as frames to the interpreter, which relays
them to the BEAM (and relays call results back).
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import struct
import tempfile
import threading
from typing import Any

from . import codec, runner
from .runner import CALL, CALL_RESULT, CAST, SEND

_HEADER = struct.Struct(">IBQ")


async def serve(path: str | None = None) -> str:
    """Listens on a Unix socket for worker processes; returns its address."""
    if path is None:
        path = os.path.join(tempfile.mkdtemp(prefix="snex-"), "workers.sock")
    await asyncio.start_unix_server(io_loop_for_connection, path=path)
    return path


async def io_loop_for_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Relays one worker's frames to the BEAM until it disconnects."""
    conn = runner.connection()
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
    if fut.cancelled():
        return
    exc = fut.exception()
    outcome = (False, str(exc)) if exc is not None else (True, fut.result())
    body = codec.encode(outcome)
    writer.write(_HEADER.pack(9 + len(body), CALL_RESULT, worker_id) + body)


class WorkerLink:
    """A worker process's link to the BEAM, through an interpreter's socket."""

    def __init__(self, address: str) -> None:
        """Connects to `address` (from `serve`) and starts reading call results."""
        self.pid = os.getpid()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(address)
        self._write_lock = threading.Lock()
        self.calls = runner.CallTable()
        threading.Thread(target=self._read_loop, name="snex-worker-link", daemon=True).start()

    def write_frame(self, kind: int, req_id: int, body: bytes = b"") -> None:
        """Writes one frame; safe from any thread."""
        with self._write_lock:
            self._sock.sendall(_HEADER.pack(9 + len(body), kind, req_id) + body)

    def register_call(self, fut: asyncio.Future[Any], loop: asyncio.AbstractEventLoop) -> int:
        """Registers a future for a call's result before the call is written."""
        return self.calls.register(fut, loop)

    def forget_call(self, call_id: int) -> None:
        """Drops a call whose caller is gone."""
        self.calls.forget(call_id)

    def _recv_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self._sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the interpreter closed the worker link")
            data += chunk
        return data

    def _read_loop(self) -> None:
        try:
            while True:
                length, _kind, call_id = _HEADER.unpack(self._recv_exact(13))
                ok, value = codec.decode(self._recv_exact(length - 9))
                self.calls.settle(call_id, (bool(ok), value))
        except (ConnectionError, OSError):
            return


def connect(address: str) -> None:
    """Makes ``send``, ``cast`` and ``call`` of this (worker) process go through `address`."""
    runner.set_link(WorkerLink(address))
