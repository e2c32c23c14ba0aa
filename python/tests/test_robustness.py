"""The reply path never wedges: whatever is raised while a request is decoded, run, encoded or
replied to becomes that request's error reply, each frame is handled once, and the next request
is served. A reply that cannot be written ends the interpreter."""

from __future__ import annotations

import os
import pickle
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from support import LoopHarness, Peer, eval_frame, frame

from snex import codec
from snex.errors import describe_exception, exception_text, format_exception
from snex.runner import (
    _FALLBACK_ERROR,
    CANCEL,
    EXIT_WRITE_FAILED,
    MAKE_ENV,
    REPLY_ERROR,
    REPLY_OK,
)
from snex.types import EncodeError


@pytest.fixture
def peer() -> Iterator[Peer]:
    p = Peer()
    yield p
    if p.proc.poll() is None:
        p.proc.kill()


BROKEN_STR = """
class E(Exception):
    __str__ = lambda self: 1 / 0
"""

# Each trigger: the code that raises (after a side effect) and how the reply reads.
TRIGGERS = {
    "an exception whose str() raises": (
        BROKEN_STR + "raise E()",
        "python_runtime_error",
        ["E: <exception str() failed: ZeroDivisionError: division by zero>"],
    ),
    "a custom encoder that raises": (
        "snex.set_custom_encoder(lambda o: o.missing)\nreturn object()",
        "encode_error",
        ["AttributeError", "missing"],
    ),
    "a list subclass whose __iter__ raises": (
        "class L(list):\n    def __iter__(self):\n        raise RuntimeError('no iter')\n"
        "return L([1])",
        "encode_error",
        ["RuntimeError: no iter"],
    ),
    "a SystemExit from a custom encoder": (
        "import sys\nsnex.set_custom_encoder(lambda o: sys.exit(3))\nreturn object()",
        "encode_error",
        ["SystemExit: 3"],
    ),
}

ASYNC_PREFIX = "import asyncio\nawait asyncio.sleep(0)\n"


@pytest.mark.parametrize("after_await", [False, True], ids=["sync", "after await"])
@pytest.mark.parametrize("trigger", list(TRIGGERS))
def test_trigger_is_an_error_of_that_call_only(peer: Peer, trigger: str, after_await: bool) -> None:
    code, expected_code, fragments = TRIGGERS[trigger]
    peer.send(MAKE_ENV, 100, (1, [], {"runs": []}))
    assert peer.recv() == (REPLY_OK, 100, None)
    src = (ASYNC_PREFIX if after_await else "") + "runs.append(1)\n" + code
    kind, (err_code, reason, tb, *_type) = peer.eval(src, env_id=1)
    assert (kind, err_code) == (REPLY_ERROR, expected_code)
    for fragment in fragments:
        assert fragment in reason
    assert tb and all(type(line) is str for line in tb)
    # The frame was consumed once: the next request is served, and the code ran once.
    assert peer.eval("snex.set_custom_encoder(None)\nreturn len(runs)", env_id=1) == (REPLY_OK, 1)
    assert peer.eval("return len(runs)", env_id=1) == (REPLY_OK, 1)


def test_broken_str_gives_a_readable_traceback(peer: Peer) -> None:
    _, (_, _, tb, _) = peer.eval(BROKEN_STR + "def f():\n    raise E()\nf()")
    text = "".join(tb)
    assert 'File "<t>", line 5, in f' in text
    assert "E" in tb[-1]


def test_unwritable_reply_ends_the_interpreter() -> None:
    peer = Peer(stderr=subprocess.PIPE)
    try:
        os.write(peer.to_w, eval_frame(1, "import os\nos.close(4)\nreturn 1"))
        assert peer.proc.wait(timeout=10) == EXIT_WRITE_FAILED
        assert peer.proc.stderr is not None
        err = peer.proc.stderr.read().decode()
        assert "snex: cannot write to Elixir" in err
        assert "OSError" in err
    finally:
        if peer.proc.poll() is None:
            peer.proc.kill()
        os.close(peer.to_w)
        os.close(peer.from_r)


# -- pieces ---------------------------------------------------------------------------------


class BrokenStr(Exception):
    def __str__(self) -> str:
        raise ValueError("nope")


class VeryBrokenStr(Exception):
    def __str__(self) -> str:
        raise BrokenStr


def test_exception_text() -> None:
    assert exception_text(ValueError("bad")) == "bad"
    assert exception_text(ValueError()) == "ValueError"
    assert exception_text(BrokenStr()) == ("BrokenStr: <exception str() failed: ValueError: nope>")
    assert exception_text(VeryBrokenStr()) == ("VeryBrokenStr: <exception str() failed: BrokenStr>")
    assert describe_exception(ValueError("bad")) == "ValueError: bad"
    assert describe_exception(ValueError()) == "ValueError"


def test_format_exception_survives_broken_exceptions() -> None:
    try:
        raise BrokenStr
    except BrokenStr as e:
        lines = format_exception(e)
    assert lines and all(type(line) is str for line in lines)
    assert "BrokenStr" in lines[-1]

    class Unformattable(Exception):
        @property  # type: ignore[misc]
        def __traceback__(self) -> None:
            raise RuntimeError("no traceback")

    lines = format_exception(Unformattable())
    assert lines[0] == "Unformattable\n"
    assert "could not be formatted" in lines[1]


def test_encode_wraps_what_the_value_raises() -> None:
    codec.set_custom_encoder(lambda o: o.missing)
    try:
        with pytest.raises(EncodeError, match="AttributeError") as info:
            codec.encode(object())
        assert isinstance(info.value.__cause__, AttributeError)
    finally:
        codec.set_custom_encoder(None)


@pytest.fixture
def harness() -> Iterator[LoopHarness]:
    h = LoopHarness()
    yield h
    h.close()


def test_error_reply_falls_back_to_a_fixed_one(
    harness: LoopHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_encode(value: object) -> bytes:
        raise MemoryError

    monkeypatch.setattr(codec, "encode", failing_encode)
    harness.conn.reply_ok(7, "anything")
    kind, req_id, body = harness.recv()
    assert (kind, req_id) == (REPLY_ERROR, 7)
    assert body == pickle.loads(_FALLBACK_ERROR)
    assert body[0] == "internal_error"


def test_failure_outside_user_code_is_an_internal_error(
    harness: LoopHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def broken_eval(req_id: int, body: bytes | bytearray) -> None:
        calls.append(req_id)
        raise KeyError("runner bug")

    monkeypatch.setattr(harness.conn, "_eval", broken_eval)

    def script(h: LoopHarness) -> None:
        h.send(eval_frame(1, "return 1") + eval_frame(2, "return 2"))
        for req_id in (1, 2):
            kind, rid, (code, reason, tb, *_type) = h.recv()
            assert (kind, rid, code) == (REPLY_ERROR, req_id, "internal_error")
            assert "KeyError: 'runner bug'" in reason and tb

    harness.run(script)
    assert calls == [1, 2]


def test_frames_of_other_kinds_that_fail_do_not_stop_the_loop(
    harness: LoopHarness, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    class BrokenTasks(dict[int, Any]):
        def get(self, key: int, default: Any = None) -> Any:
            raise RuntimeError("lookup failed")

    monkeypatch.setattr(harness.conn, "tasks", BrokenTasks())

    def script(h: LoopHarness) -> None:
        h.send(frame(CANCEL, 5) + eval_frame(1, "return 1"))
        assert h.recv() == (REPLY_OK, 1, 1)

    harness.run(script)
    err = capfd.readouterr().err
    assert "failed to handle a frame of kind 4: RuntimeError: lookup failed" in err
