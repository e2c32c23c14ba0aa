"""End to end: `python -m snex` driven over its fd 3/4 pipes, as the NIF drives it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support import Peer, frame

from snex.runner import (
    CALL,
    CALL_RESULT,
    CANCEL,
    DESTROY_ENV,
    EVAL,
    MAKE_ENV,
    REPLY_ERROR,
    REPLY_OK,
    parse_read_limit,
)


@pytest.fixture
def peer() -> Iterator[Peer]:
    p = Peer()
    yield p
    if p.proc.poll() is None:
        p.proc.kill()


def make_env(peer: Peer, env_id: int, sources: Any = (), variables: Any = None) -> tuple[int, Any]:
    peer.send(MAKE_ENV, 1000 + env_id, (env_id, list(sources), variables or {}))
    kind, _, body = peer.recv()
    return kind, body


def test_eval_and_envs(peer: Peer) -> None:
    assert peer.eval("return 1 + 1") == (REPLY_OK, 2)
    assert make_env(peer, 1, variables={"x": 5}) == (REPLY_OK, None)
    assert peer.eval("y = x * 2", env_id=1) == (REPLY_OK, None)
    assert peer.eval("return y", env_id=1) == (REPLY_OK, 10)
    # The throw-away env does not see env 1.
    kind, (code, *_) = peer.eval("return y")
    assert kind == REPLY_ERROR and code == "python_runtime_error"
    assert make_env(peer, 2, sources=[(1, 1, ["y"])]) == (REPLY_OK, None)
    assert peer.eval("return [y, 'x' in globals()]", env_id=2) == (REPLY_OK, [10, False])
    kind, (code, reason, *_) = make_env(peer, 3, sources=[(1, 1, ["nope"])])
    assert code == "env_key_not_found" and "nope" in reason
    peer.send(DESTROY_ENV, 1)
    kind, (code, *_) = peer.eval("return 1", env_id=1)
    assert code == "env_not_found"


def test_errors_and_tracebacks(peer: Peer) -> None:
    kind, (code, reason, tb, python_type) = peer.eval("def f():\n    raise ValueError('bad')\nf()")
    assert kind == REPLY_ERROR and code == "python_runtime_error" and reason == "bad"
    assert python_type == "ValueError"
    text = "".join(tb)
    assert 'File "<t>", line 2, in f' in text
    assert "runner.py" not in text
    kind, (code, _, _, python_type) = peer.eval("import sys\nsys.exit(1)")
    assert code == "python_runtime_error" and python_type == "SystemExit"
    assert peer.eval("return 'alive'") == (REPLY_OK, "alive")
    kind, (code, reason, *_) = peer.eval("return object()")
    assert code == "encode_error" and "object" in reason


def test_cancel(peer: Peer) -> None:
    assert make_env(peer, 1) == (REPLY_OK, None)
    peer.send(
        EVAL,
        50,
        (
            1,
            "import asyncio\ntry:\n    await asyncio.sleep(100)\n"
            "except asyncio.CancelledError:\n    state = 'cancelled'\n    raise",
            "<t>",
            0,
            {},
            False,
        ),
    )
    time.sleep(0.2)  # let the task start (a task cancelled before it starts never runs)
    peer.send(CANCEL, 50)
    assert peer.eval("import asyncio\nawait asyncio.sleep(0.05)\nreturn state", env_id=1) == (
        REPLY_OK,
        "cancelled",
    )


def test_concurrent_evals(peer: Peer) -> None:
    for i in range(100):
        peer.send(
            EVAL,
            i + 1,
            (
                -1,
                "import asyncio, random\nawait asyncio.sleep(random.random() / 100)\nreturn i",
                "<t>",
                0,
                {"i": i},
                False,
            ),
        )
    replies = {rid: body for _, rid, body in (peer.recv() for _ in range(100))}
    assert replies == {i + 1: i for i in range(100)}


def test_calls_to_elixir(peer: Peer) -> None:
    peer.send(
        EVAL,
        7,
        (
            -1,
            "try:\n    a = await snex.call('erlang', 'abs', [-1])\n"
            "    await snex.call('m', 'f', [])\nexcept snex.ElixirError as e:\n"
            "    return [a, str(e)]",
            "<t>",
            0,
            {},
            False,
        ),
    )
    kind, call_id, (module, function, args, node, _opts) = peer.recv()
    assert (kind, module, function, args, node) == (CALL, "erlang", "abs", [-1], None)
    peer.send(CALL_RESULT, call_id, (True, 1))
    kind, call_id, _ = peer.recv()
    peer.send(CALL_RESULT, call_id, (False, "** (RuntimeError) boom"))
    assert peer.recv() == (REPLY_OK, 7, [1, "** (RuntimeError) boom"])


def test_eof_exits_cleanly(peer: Peer) -> None:
    assert peer.close() == 0


UNREAD_PROBE = """
import array, fcntl, termios
unread = array.array("i", [0])
fcntl.ioctl(3, termios.FIONREAD, unread)
return unread[0]
"""


@pytest.mark.parametrize("limit", [0, 1000, None])
def test_read_limit(limit: int | None) -> None:
    """With SNEX_READ_LIMIT, Python reads at most that many bytes beyond the frame it is
    assembling; what it has not read stays in the pipe."""
    peer = Peer(None if limit is None else {"SNEX_READ_LIMIT": str(limit)})
    try:
        probe = frame(EVAL, 1, (-1, UNREAD_PROBE, "<t>", 0, {}, False))
        rest = b"".join(
            frame(EVAL, 2 + n, (-1, "return n", "<t>", 0, {"n": n, "pad": "x" * 1000}, False))
            for n in range(30)
        )
        # Well under the pipe's 64 KiB: one write, all in the pipe before Python reads.
        os.write(peer.to_w, probe + rest)
        kind, req_id, unread = peer.recv()
        assert (kind, req_id) == (REPLY_OK, 1)
        if limit is None:
            assert unread == 0  # read in 64 KiB chunks
        else:
            assert len(rest) - limit <= unread <= len(rest)
        assert [peer.recv() for _ in range(30)] == [(REPLY_OK, 2 + n, n) for n in range(30)]
        assert peer.close() == 0
    finally:
        if peer.proc.poll() is None:
            peer.proc.kill()


def test_parse_read_limit() -> None:
    assert parse_read_limit("8388608") == 8388608
    assert parse_read_limit("0") == 0
    assert parse_read_limit(None) is None
    assert parse_read_limit("-1") is None
    assert parse_read_limit("lots") is None


def test_hello_comes_first_with_the_pid() -> None:
    """The first frame is HELLO, with the runner's pid (checked in `Peer`), and the SIGUSR2
    handler is in place by then: a signal right after it does not end the runner."""
    peer = Peer()
    try:
        os.kill(peer.proc.pid, signal.SIGUSR2)
        assert peer.eval("return 1") == (REPLY_OK, 1)
        assert peer.close() == 0
    finally:
        if peer.proc.poll() is None:
            peer.proc.kill()
