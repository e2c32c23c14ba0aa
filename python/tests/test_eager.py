"""The eager event loop: newly ready callbacks run without another poll of the selector."""

from __future__ import annotations

import asyncio
import selectors
import sys
from typing import Any

import pytest

from snex import eager


class CountingSelector(selectors.DefaultSelector):
    """A selector that counts its polls."""

    polls = 0

    def select(self, timeout: float | None = None) -> list[Any]:
        self.polls += 1
        return super().select(timeout)


def run_chain(loop_class: type[asyncio.SelectorEventLoop], length: int) -> tuple[list[int], int]:
    """Runs a chain of `length` callbacks, each scheduling the next; returns the order they
    ran in and how often the selector was polled."""
    selector = CountingSelector()
    loop = loop_class(selector)
    order: list[int] = []

    def step(i: int) -> None:
        order.append(i)
        if i + 1 < length:
            loop.call_soon(step, i + 1)
        else:
            loop.stop()

    try:
        loop.call_soon(step, 0)
        loop.run_forever()
    finally:
        loop.close()
    return order, selector.polls


def test_ready_callbacks_run_without_polling() -> None:
    order, polls = run_chain(eager.EagerEventLoop, 10)
    assert order == list(range(10))
    assert polls <= 2
    # The plain loop polls once per hop.
    plain_order, plain_polls = run_chain(asyncio.SelectorEventLoop, 10)
    assert plain_order == order
    assert plain_polls >= 10


def test_rounds_are_bounded_so_io_is_served() -> None:
    length = eager.MAX_EAGER_ROUNDS * 5
    order, polls = run_chain(eager.EagerEventLoop, length)
    assert order == list(range(length))
    assert polls >= 4


def test_cancelled_handles_are_skipped_and_order_is_kept() -> None:
    loop = eager.EagerEventLoop()
    ran: list[str] = []

    def first() -> None:
        ran.append("first")
        skipped = loop.call_soon(ran.append, "cancelled")
        loop.call_soon(ran.append, "second")
        skipped.cancel()
        loop.call_soon(loop.stop)

    try:
        loop.call_soon(first)
        loop.run_forever()
    finally:
        loop.close()
    assert ran == ["first", "second"]


def test_tasks_and_exceptions_behave_as_usual() -> None:
    async def work(x: int) -> int:
        await asyncio.sleep(0)
        if x < 0:
            raise ValueError("negative")
        return x * 2

    async def main() -> list[Any]:
        return await asyncio.gather(work(1), work(2), work(-1), return_exceptions=True)

    loop = eager.new_event_loop(True)
    try:
        results = loop.run_until_complete(main())
    finally:
        loop.close()
    assert results[:2] == [2, 4]
    assert isinstance(results[2], ValueError)


@pytest.mark.parametrize("on", [True, False])
def test_new_event_loop(on: bool) -> None:
    loop = eager.new_event_loop(on)
    try:
        assert isinstance(loop, eager.EagerEventLoop) == on
        if on and sys.version_info >= (3, 12):
            assert loop.get_task_factory() is asyncio.eager_task_factory  # type: ignore[attr-defined]
    finally:
        loop.close()
