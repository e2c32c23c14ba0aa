"""Cancelling running code: a CANCEL frame plus SIGUSR2 interrupts the request whose code is
running (``time.sleep``, ``while True: pass``, a synchronous stretch of a task), and nothing
else: the frames the signal handler reads on the way are served as usual."""

from __future__ import annotations

import array
import asyncio
import fcntl
import random
import signal
import termios
import threading
import time
from collections.abc import Callable, Iterator
from types import CodeType
from typing import Any

import pytest
from support import LoopHarness, eval_frame, frame

from snex import runner, splice
from snex.runner import CANCEL, REPLY_OK, SEND

SLEEP = "started.set()\nimport time\ntime.sleep(20)\nreturn 'slept'"
SPIN = "started.set()\nwhile True:\n    pass"
TASK_SPIN = "import asyncio\nawait asyncio.sleep(0)\nstarted.set()\nwhile True:\n    pass"
TASK_SLEEP = "import asyncio\nawait asyncio.sleep(0)\nstarted.set()\nimport time\ntime.sleep(20)"
SLEEP_1S = "started.set()\nimport time\ntime.sleep(1)\nreturn 1"
TASK_SLEEP_1S = "import asyncio\nawait asyncio.sleep(0)\n" + SLEEP_1S


def unread(fd: int) -> int:
    """Bytes waiting in the pipe `fd`."""
    n = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, n)
    return n[0]


def wait_until(check: Callable[[], bool], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.001)
    return False


@pytest.fixture
def harness() -> Iterator[LoopHarness]:
    h = LoopHarness()
    h.env["started"] = threading.Event()
    h.env["log"] = []
    yield h
    h.close()


def started(h: LoopHarness, code: str = "") -> None:
    assert h.env["started"].wait(5), "the code did not start"
    h.env["started"].clear()
    if "time.sleep(" in code:
        h.wait_until_sleeping()


@pytest.mark.parametrize("code", [SLEEP, SPIN, TASK_SPIN, TASK_SLEEP])
def test_cancel_interrupts_the_running_request(harness: LoopHarness, code: str) -> None:
    def script(h: LoopHarness) -> None:
        h.send(eval_frame(1, code))
        started(h, code)
        t0 = time.monotonic()
        h.send(frame(CANCEL, 1))
        h.signal()
        h.send(eval_frame(2, "return 2"))
        # No reply for the cancelled request; the next one is served at once.
        assert h.recv() == (REPLY_OK, 2, 2)
        assert time.monotonic() - t0 < 2

    harness.run(script)
    assert harness.conn.tasks == {}


def test_signal_before_the_cancel_is_readable(harness: LoopHarness) -> None:
    """Elixir may signal before its CANCEL frame is in the pipe; a second signal follows."""

    def script(h: LoopHarness) -> None:
        h.send(eval_frame(1, SPIN))
        started(h)
        h.signal()
        time.sleep(0.1)
        h.send(frame(CANCEL, 1))
        h.signal()
        h.send(eval_frame(2, "return 2"))
        assert h.recv() == (REPLY_OK, 2, 2)

    harness.run(script)


def test_cancelled_code_can_clean_up(harness: LoopHarness) -> None:
    code = (
        "import asyncio\nstarted.set()\ntry:\n    while True:\n        pass\n"
        "except asyncio.CancelledError:\n    log.append('cancelled')\n    raise"
    )

    def script(h: LoopHarness) -> None:
        h.send(eval_frame(1, code))
        started(h)
        h.send(frame(CANCEL, 1))
        h.signal()
        h.send(eval_frame(2, "return log"))
        assert h.recv() == (REPLY_OK, 2, ["cancelled"])

    harness.run(script)


def test_a_signal_without_cancel_changes_nothing(harness: LoopHarness) -> None:
    code = "started.set()\nimport time\nt0 = time.monotonic()\ntime.sleep(0.3)\n"
    code += "return time.monotonic() - t0"

    def script(h: LoopHarness) -> None:
        h.send(eval_frame(1, code))
        started(h, code)
        for _ in range(3):
            h.signal()
            time.sleep(0.02)
        kind, req_id, slept = h.recv()
        assert (kind, req_id) == (REPLY_OK, 1)
        assert slept >= 0.3
        # And when nothing runs at all.
        h.signal()
        h.send(eval_frame(2, "return 2"))
        assert h.recv() == (REPLY_OK, 2, 2)

    harness.run(script)


def test_a_cancel_for_another_request_leaves_the_running_one(harness: LoopHarness) -> None:
    waiting = (
        "import asyncio\nstarted.set()\ntry:\n    await asyncio.sleep(100)\n"
        "except asyncio.CancelledError:\n    log.append('task cancelled')\n    raise"
    )
    running = "started.set()\nimport time\ntime.sleep(0.3)\nreturn 'finished'"

    def script(h: LoopHarness) -> None:
        h.send(eval_frame(1, waiting))
        started(h)
        h.send(eval_frame(2, running))
        started(h, running)
        h.send(frame(CANCEL, 1))
        h.signal()
        assert h.recv() == (REPLY_OK, 2, "finished")
        h.send(eval_frame(3, "return log"))
        assert h.recv() == (REPLY_OK, 3, ["task cancelled"])

    harness.run(script)


@pytest.mark.parametrize("code", [SLEEP_1S, TASK_SLEEP_1S], ids=["sync", "task"])
def test_frames_read_by_the_handler_are_served(harness: LoopHarness, code: str) -> None:
    """The handler takes every readable frame out of the pipe; those are served once the
    running code is done, even though nothing is left in the pipe to wake the loop."""

    def script(h: LoopHarness) -> None:
        h.send(eval_frame(1, code))
        started(h, code)
        h.send(eval_frame(2, "return 2") + frame(CANCEL, 99))
        h.signal()
        assert wait_until(lambda: unread(h.to_r) == 0), "the handler did not read the pipe"
        assert h.nothing_to_read(0.05), "request 1 should still be sleeping"
        assert h.recv() == (REPLY_OK, 1, 1)
        assert h.recv() == (REPLY_OK, 2, 2)

    harness.run(script)


def test_a_request_cancelled_before_it_starts_does_not_run(harness: LoopHarness) -> None:
    def script(h: LoopHarness) -> None:
        h.send(eval_frame(1, SLEEP_1S))
        started(h, SLEEP_1S)
        h.send(eval_frame(2, "log.append('ran')\nreturn 2") + frame(CANCEL, 2))
        h.signal()
        assert h.recv() == (REPLY_OK, 1, 1)
        h.send(eval_frame(3, "return log"))
        assert h.recv() == (REPLY_OK, 3, [])

    harness.run(script)


@pytest.mark.parametrize(
    "code", ["log.append('ran')", "import asyncio\nlog.append('ran')\nawait asyncio.sleep(0)"]
)
def test_a_request_cancelled_while_it_is_prepared_does_not_run(
    harness: LoopHarness, monkeypatch: pytest.MonkeyPatch, code: str
) -> None:
    """The signal comes while the runner decodes and compiles the request: neither running
    (nothing to interrupt yet) nor queued; its code must not start."""
    real_compile = runner.compile_code

    def compile_while_cancelled(src: str, file: str, line: int) -> CodeType:
        if src == code:
            harness.send(frame(CANCEL, 1))
            signal.raise_signal(signal.SIGUSR2)  # the handler runs before this returns
        return real_compile(src, file, line)

    monkeypatch.setattr(runner, "compile_code", compile_while_cancelled)

    def script(h: LoopHarness) -> None:
        h.send(eval_frame(1, code))
        h.send(eval_frame(2, "import asyncio\nawait asyncio.sleep(0.05)\nreturn log"))
        assert h.recv() == (REPLY_OK, 2, [])

    harness.run(script)


def test_a_signal_while_reading_is_applied_after_the_read(
    harness: LoopHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal that comes while the loop queues what it read leaves the reader alone; the
    CANCEL frames it announces are applied right after the read, before anything runs: here,
    before the cancelled task, woken by the frame just read, would spin forever."""
    reader = harness.conn.reader
    real_enqueue = reader._enqueue
    seen_pending = []

    def enqueue_while_cancelled(kind: int, req_id: int, body: Any) -> None:
        # Elixir cancels request 2 while Python is in the middle of reading request 3.
        monkeypatch.setattr(reader, "_enqueue", real_enqueue)
        harness.send(frame(CANCEL, 2))
        signal.raise_signal(signal.SIGUSR2)  # the handler runs before this returns
        seen_pending.append(harness.conn.signal_pending)
        real_enqueue(kind, req_id, body)

    waiting = "log.append('waiting')\nawait fut\nlog.append('spinning')\nwhile True:\n    pass"

    def script(h: LoopHarness) -> None:
        h.send(eval_frame(1, "fut = asyncio.get_running_loop().create_future()", env_id=0))
        assert h.recv() == (REPLY_OK, 1, None)
        h.send(eval_frame(2, waiting, env_id=0))
        assert wait_until(lambda: h.env["log"] == ["waiting"])
        monkeypatch.setattr(reader, "_enqueue", enqueue_while_cancelled)
        h.send(eval_frame(3, "if not fut.done():\n    fut.set_result(1)\nreturn 3", env_id=0))
        assert h.recv() == (REPLY_OK, 3, 3)
        h.send(eval_frame(4, "return log"))
        assert h.recv() == (REPLY_OK, 4, ["waiting"])

    harness.env["asyncio"] = asyncio
    harness.run(script)
    assert seen_pending == [True]


@pytest.mark.parametrize("state", ["reading", "absorbing"])
def test_the_handler_leaves_the_reader_alone_while_the_loop_uses_it(
    harness: LoopHarness, state: str
) -> None:
    """While the loop reads, or applies CANCEL frames itself, the handler only leaves a mark
    (the loop looks again once it is done)."""
    conn = harness.conn
    harness.send(frame(CANCEL, 9))
    if state == "reading":
        conn.reader.busy = True
    else:
        conn.absorbing = True
    conn.cancel_signal()(signal.SIGUSR2, None)
    assert conn.signal_pending
    assert unread(harness.to_r) == 13
    conn.reader.busy = conn.absorbing = False
    conn.cancel_signal()(signal.SIGUSR2, None)
    assert unread(harness.to_r) == 0


def test_a_handler_that_fails_says_so_on_stderr_and_raises_nothing(
    harness: LoopHarness, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """If looking for the running request fails, the handler writes why to fd 2 and returns:
    nothing is raised into the interrupted code."""

    def broken() -> int | None:
        raise RuntimeError("simulated")

    monkeypatch.setattr(harness.conn, "running_request", broken)
    capfd.readouterr()
    harness.conn.cancel_signal()(signal.SIGUSR2, None)
    assert capfd.readouterr().err == "snex: cancellation failed: RuntimeError\n"


def test_the_handler_does_not_raise_while_a_frame_is_written(
    harness: LoopHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled in the middle of writing a frame, the code sees CancelledError only once the
    frame is out: the frame arrives whole."""
    code = (
        "started.set()\nready.wait()\n"
        "try:\n    snex.interface.send_now(snex.Atom('pid'), 'x' * 100_000)\n"
        "except BaseException as e:\n    log.append(type(e).__name__)\n    raise\n"
        "log.append('not cancelled')"
    )
    harness.env["ready"] = threading.Event()
    monkeypatch.setattr(runner, "_connection", harness.conn)
    real_write_all = splice.write_all

    def write_with_signal(fd: int, parts: list[bytes], by_reference: int = 0) -> None:
        data = b"".join(parts)
        real_write_all(fd, [data[:1000]])
        signal.raise_signal(signal.SIGUSR2)  # the handler runs here, half a frame out
        real_write_all(fd, [data[1000:]])

    def script(h: LoopHarness) -> None:
        h.send(eval_frame(1, code))
        started(h)
        h.send(frame(CANCEL, 1))
        monkeypatch.setattr(splice, "write_all", write_with_signal)
        h.env["ready"].set()
        assert h.recv() == (SEND, 0, ("pid", "x" * 100_000))
        monkeypatch.setattr(splice, "write_all", real_write_all)
        h.send(eval_frame(2, "return log"))
        assert h.recv() == (REPLY_OK, 2, ["CancelledError"])

    harness.run(script)


@pytest.mark.parametrize("read_limit", [None, 100, 0])
def test_a_storm_of_signals_does_not_corrupt_frames(read_limit: int | None) -> None:
    """Signals every fraction of a millisecond while frames arrive in pieces of random sizes
    (large bodies included) and code runs: every request is answered, with its own value."""
    h = LoopHarness(read_limit=read_limit)
    rng = random.Random(read_limit)
    try:
        codes = []
        for i in range(1, 201):
            if i % 50 == 0:
                codes.append((i, "return len(big)", {"big": "y" * (1 << 20) + "z" * i}))
            elif i % 3 == 0:
                codes.append((i, "import asyncio\nawait asyncio.sleep(0)\nreturn n", {"n": i}))
            elif i % 7 == 0:
                codes.append((i, "import time\ntime.sleep(0.002)\nreturn n", {"n": i}))
            else:
                codes.append((i, "return n", {"n": i}))
        data = b"".join(eval_frame(i, code, -1, variables) for i, code, variables in codes)
        stop = threading.Event()

        def storm() -> None:
            while not stop.is_set():
                h.signal()
                time.sleep(0.0002)

        def script(h: LoopHarness) -> None:
            storm_thread = threading.Thread(target=storm, daemon=True)
            storm_thread.start()
            try:
                pos = 0
                while pos < len(data):
                    size = rng.choice([1, 7, 13, 100, 4096, 70_000])
                    h.send(data[pos : pos + size])
                    pos += size
                replies = {}
                for _ in codes:
                    kind, req_id, value = h.recv()
                    assert kind == REPLY_OK, (req_id, value)
                    replies[req_id] = value
            finally:
                stop.set()
                storm_thread.join()
            expected = {i: (len(v["big"]) if "big" in v else v["n"]) for i, _, v in codes}
            assert replies == expected

        h.run(script, timeout=60)
    finally:
        h.close()
