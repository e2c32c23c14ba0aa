"""Replies written together (`snex.reply_batch`): quick requests read together get their replies
in one write, and no reply waits for code that may take long."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support import LoopHarness, eval_frame

from snex import reply_batch, splice
from snex.code import compile_code
from snex.reply_batch import ReplyBatch
from snex.runner import REPLY_OK


@pytest.fixture
def harness() -> Iterator[LoopHarness]:
    h = LoopHarness()
    yield h
    h.close()


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of frames in each write of the runner."""
    counts: list[int] = []
    real = splice.write_all

    def counting(fd: int, parts: Any, by_reference: int = 0) -> None:
        data = b"".join(bytes(p) for p in parts)
        n, pos = 0, 0
        while pos < len(data):
            pos += 4 + int.from_bytes(data[pos : pos + 4], "big")
            n += 1
        counts.append(n)
        real(fd, [data])

    monkeypatch.setattr(splice, "write_all", counting)
    return counts


def test_replies_of_quick_requests_read_together_go_in_one_write(
    harness: LoopHarness, writes: list[int]
) -> None:
    def script(h: LoopHarness) -> None:
        h.send(eval_frame(1, "return 1"))  # runs once: now known to be quick
        assert h.recv() == (REPLY_OK, 1, 1)
        writes.clear()
        h.send(b"".join(eval_frame(i, "return 1") for i in range(2, 52)))
        for i in range(2, 52):
            assert h.recv() == (REPLY_OK, i, 1)

    harness.run(script)
    assert sum(writes) == 50
    assert len(writes) < 10, writes


def test_a_reply_does_not_wait_for_code_not_known_to_be_quick(harness: LoopHarness) -> None:
    def script(h: LoopHarness) -> None:
        h.send(eval_frame(1, "return 1"))
        assert h.recv() == (REPLY_OK, 1, 1)
        t0 = time.monotonic()
        h.send(eval_frame(2, "return 1") + eval_frame(3, "import time\ntime.sleep(1)\nreturn 3"))
        assert h.recv() == (REPLY_OK, 2, 1)
        assert time.monotonic() - t0 < 0.5
        assert h.recv() == (REPLY_OK, 3, 3)

    harness.run(script)


#: Code that sleeps only when `delay` is set (``time.sleep(0)`` alone may take 100 µs).
DELAYED = "import time\nif delay:\n    time.sleep(delay)\nreturn 0"


def warm_until_quick(h: LoopHarness, src: str, result: Any) -> None:
    """Runs `src` until the runner knows it as quick (its first runs are not)."""
    key = compile_code(src, "<t>", 0)
    for i in range(100, 200):
        h.send(eval_frame(i, src))
        assert h.recv() == (REPLY_OK, i, result)
        if h.conn.replies.is_quick(key):
            break
    assert h.conn.replies.is_quick(key)


def recorded(h: LoopHarness) -> None:
    """One more round trip: by its reply, the runner has recorded how long the code before it
    took (it does after that code's reply)."""
    h.send(eval_frame(99, "return 99"))
    assert h.recv() == (REPLY_OK, 99, 99)


def test_code_that_was_slow_is_not_quick_any_more(
    harness: LoopHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reply_batch, "MAX_WAIT", 60)  # the helper thread stays out of it
    harness.env["delay"] = 0.0
    code = DELAYED

    def script(h: LoopHarness) -> None:
        warm_until_quick(h, code, 0)
        h.env["delay"] = 0.3
        h.send(eval_frame(2, code))
        assert h.recv() == (REPLY_OK, 2, 0)
        recorded(h)
        assert not h.conn.replies.is_quick(compile_code(code, "<t>", 0))
        # Slow last time: the reply before it is written before it runs.
        t0 = time.monotonic()
        h.send(eval_frame(3, "return 1") + eval_frame(4, code))
        assert h.recv() == (REPLY_OK, 3, 1)
        assert time.monotonic() - t0 < 0.25
        assert h.recv() == (REPLY_OK, 4, 0)

    harness.run(script)


def test_a_reply_held_behind_code_quick_last_time_is_written_within_a_few_ms(
    harness: LoopHarness,
) -> None:
    harness.env["delay"] = 0.0
    code = DELAYED

    def script(h: LoopHarness) -> None:
        # Quick last time: the reply held before it is not written before it runs.
        warm_until_quick(h, code, 0)
        h.env["delay"] = 1.0  # quick last time, slow now
        t0 = time.monotonic()
        h.send(eval_frame(4, "return 4") + eval_frame(5, code))
        assert h.recv() == (REPLY_OK, 4, 4)
        assert time.monotonic() - t0 < 0.5
        assert h.recv() == (REPLY_OK, 5, 0)

    harness.run(script)


def test_encoding_a_reply_counts_and_replies_keep_their_order(
    harness: LoopHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reply_batch, "MAX_WAIT", 60)  # the helper thread stays out of it
    harness.env["data"] = 0

    code = compile_code("return data", "<t>", 0)

    def script(h: LoopHarness) -> None:
        warm_until_quick(h, "return data", 0)  # with a small result
        h.env["data"] = list(range(1_000_000))  # the same code, slow to encode now
        h.send(eval_frame(2, "return 2") + eval_frame(3, "return data"))
        kind, req_id, _ = h.recv()
        assert (kind, req_id) == (REPLY_OK, 2)
        kind, req_id, value = h.recv()
        assert (kind, req_id, len(value)) == (REPLY_OK, 3, 1_000_000)
        # Running it was quick, encoding its result was not.
        recorded(h)
        assert not h.conn.replies.is_quick(code)
        # Slow last time (its encoding counted): held replies go before it runs now.
        h.env["data"] = 0
        t0 = time.monotonic()
        h.send(eval_frame(4, "return 4") + eval_frame(5, "return data"))
        assert h.recv() == (REPLY_OK, 4, 4)
        assert h.recv() == (REPLY_OK, 5, 0)
        assert time.monotonic() - t0 < 5

    harness.run(script)


def test_the_batch_itself() -> None:
    written: list[bytes] = []
    batch = ReplyBatch(lambda take: written.append(take()))
    assert not batch.hold(b"x")  # not handling frames: written at once
    batch.depth = 1
    assert batch.hold(b"ab") and batch.hold(b"c")
    assert not batch.hold(b"x" * (reply_batch.MAX_FRAME + 1))
    assert batch.take() == b"abc" and batch.take() == b""
    assert not batch.is_quick("code") and not batch.is_quick(None)
    batch.ran("code", reply_batch.QUICK / 2)
    assert batch.is_quick("code")
    batch.ran("code", reply_batch.QUICK * 2)
    assert not batch.is_quick("code")
    while not batch.full():
        batch.hold(b"x" * 1000)
    batch.flush()
    assert written and not batch.take()


def test_the_helper_thread_writes_what_waits_too_long() -> None:
    written: list[bytes] = []
    done = threading.Event()

    def write(take: Any) -> None:
        written.append(take())
        done.set()

    batch = ReplyBatch(write)
    batch.depth = 1
    assert batch.hold(b"late")
    assert done.wait(5)
    assert written == [b"late"]


def test_a_request_alone_is_answered_at_once(harness: LoopHarness) -> None:
    def script(h: LoopHarness) -> None:
        for i in range(1, 6):
            h.send(eval_frame(i, "return 1"))
            assert h.recv() == (REPLY_OK, i, 1)

    harness.run(script)
    # Nothing was held (no frame behind it to wait for): the helper thread never started,
    # and no wake-up of it was paid for.
    assert harness.conn.replies._flusher is None
