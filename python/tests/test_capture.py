"""The streams that send a capturing request's output to Elixir."""

from __future__ import annotations

import asyncio
import io

from snex import capture


def test_writes_go_to_the_request_only_while_it_captures() -> None:
    sent: list[tuple[int, str, str]] = []
    original = io.StringIO()
    stream = capture.CapturingStream(original, "stdout", lambda *a: sent.append(a))
    stream.write("before ")
    token = capture.current.set(7)
    try:
        assert stream.write("captured") == len("captured")
    finally:
        capture.current.reset(token)
    stream.write("after")
    assert sent == [(7, "stdout", "captured")]
    assert original.getvalue() == "before after"


def test_tasks_inherit_the_capturing_request() -> None:
    sent: list[tuple[int, str, str]] = []
    stream = capture.CapturingStream(io.StringIO(), "stderr", lambda *a: sent.append(a))

    async def main() -> None:
        token = capture.current.set(3)
        task = asyncio.get_running_loop().create_task(child())
        capture.current.reset(token)
        await task

    async def child() -> None:
        stream.write("from the task")

    asyncio.run(main())
    assert sent == [(3, "stderr", "from the task")]
