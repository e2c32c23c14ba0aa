"""``snex.serve`` / ``snex.serve_forever`` against a fake interpreter on a Unix socket."""

from __future__ import annotations

import asyncio
import os
import pickle
import struct
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import snex
from snex import runner
from snex.runner import CALL, CALL_RESULT, SEND
from snex.workers import StreamLink

HEADER = struct.Struct(">IBQ")


class FakeInterpreter:
    """Answers CALLs with ``(True, args)`` (or holds them when `hold` is set); records SENDs."""

    def __init__(self, hold: bool = False) -> None:
        self.hold = hold
        self.sent: asyncio.Queue[Any] = asyncio.Queue()
        self.writers: list[asyncio.StreamWriter] = []
        self.connected = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        self.connected.set()
        try:
            while True:
                length, kind, req_id = HEADER.unpack(await reader.readexactly(13))
                body = pickle.loads(await reader.readexactly(length - 9))
                if kind == SEND:
                    await self.sent.put(body)
                elif kind == CALL and not self.hold:
                    _module, _function, args, _node, _opts = body
                    reply = pickle.dumps((True, args), 5)
                    writer.write(HEADER.pack(9 + len(reply), CALL_RESULT, req_id) + reply)
        except asyncio.IncompleteReadError:
            pass

    def close_all(self) -> None:
        for writer in self.writers:
            writer.close()


@asynccontextmanager
async def fake_interpreter(
    hold: bool = False,
) -> AsyncIterator[tuple[FakeInterpreter, asyncio.StreamReader, asyncio.StreamWriter]]:
    fake = FakeInterpreter(hold)
    path = os.path.join(tempfile.mkdtemp(prefix="snex-test-"), "s.sock")
    server = await asyncio.start_unix_server(fake.handle, path=path)
    reader, writer = await asyncio.open_unix_connection(path)
    await fake.connected.wait()
    try:
        yield fake, reader, writer
    finally:
        writer.close()
        server.close()


def test_serve_makes_send_and_call_work_and_ends_with_the_block() -> None:
    async def main() -> None:
        async with fake_interpreter() as (fake, reader, writer):
            async with snex.serve(reader, writer):
                await snex.send(snex.Atom("name"), "hello")
                assert await fake.sent.get() == (snex.Atom("name"), "hello")
                assert await snex.call("m", "f", [1, 2]) == [1, 2]
                # From another thread, on its own loop.
                result = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: asyncio.run(snex.call("m", "f", [3]))
                )
                assert result == [3]
            with pytest.raises(RuntimeError, match="not connected"):
                await snex.send(snex.Atom("name"), "after")

    asyncio.run(main())


def test_serving_twice_raises() -> None:
    async def main() -> None:
        async with fake_interpreter() as (_fake, reader, writer), snex.serve(reader, writer):
            with pytest.raises(RuntimeError, match=r"^Snex is already running!$"):
                async with snex.serve(reader, writer):
                    pass
            with pytest.raises(RuntimeError, match=r"^Snex is already running!$"):
                await snex.serve_forever(reader, writer)
        assert runner._link is None

    asyncio.run(main())


def test_pending_calls_fail_when_the_block_ends() -> None:
    async def main() -> None:
        async with fake_interpreter(hold=True) as (_fake, reader, writer):
            async with snex.serve(reader, writer):
                call = asyncio.ensure_future(snex.call("m", "f", []))
                await asyncio.sleep(0.05)  # the workload: let the call be written
            with pytest.raises(snex.ElixirError, match="closed"):
                await asyncio.wait_for(call, 10)

    asyncio.run(main())


def test_pending_calls_of_every_thread_fail_when_the_block_ends() -> None:
    async def main() -> None:
        async with fake_interpreter(hold=True) as (_fake, reader, writer):
            loop = asyncio.get_running_loop()
            async with snex.serve(reader, writer):
                link = runner.link()
                assert isinstance(link, StreamLink)
                here = asyncio.ensure_future(snex.call("m", "f", []))
                # From another thread, on its own loop (a call never failed times out there).
                there = loop.run_in_executor(
                    None, lambda: asyncio.run(asyncio.wait_for(snex.call("m", "f", []), 5))
                )
                deadline = time.monotonic() + 10
                while len(link.calls._calls) < 2:
                    assert time.monotonic() < deadline, "the calls were not made"
                    await asyncio.sleep(0.01)
            for call in (here, there):
                with pytest.raises(snex.ElixirError, match="closed"):
                    await asyncio.wait_for(call, 10)
            assert not link.calls._calls

    asyncio.run(main())


def test_serve_forever_runs_on_ready_and_returns_at_eof() -> None:
    async def main() -> None:
        async with fake_interpreter() as (fake, reader, writer):
            seen: list[Any] = []

            async def on_ready() -> None:
                seen.append(await snex.call("m", "f", ["ready"]))
                fake.close_all()  # the interpreter closes the connection: EOF

            await asyncio.wait_for(snex.serve_forever(reader, writer, on_ready=on_ready), 10)
            assert seen == [["ready"]]
            assert runner._link is None

    asyncio.run(main())


def test_serve_forever_with_a_plain_callback() -> None:
    async def main() -> None:
        async with fake_interpreter() as (fake, reader, writer):
            called: list[bool] = []

            def on_ready() -> None:
                called.append(True)
                fake.close_all()

            await asyncio.wait_for(snex.serve_forever(reader, writer, on_ready=on_ready), 10)
            assert called == [True]

    asyncio.run(main())
