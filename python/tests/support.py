"""Test helpers: drive the runner over real pipes, as the NIF does.

`Peer` runs ``python -m snex`` in a child process on fds 3/4. `LoopHarness` runs a `Connection`
on an event loop in this process's main thread (where signal handlers run), with the
cancellation signal handler installed, while a script in another thread plays Elixir.
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import fcntl
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from snex import buffers, codec, eager, runner
from snex.runner import EVAL, HELLO, ROOT_ENV, Connection

PYTHON_DIR = Path(__file__).resolve().parents[1]


def frame(kind: int, req_id: int, body: Any = None) -> bytes:
    data = b"" if body is None else pickle.dumps(body, 5)
    return struct.pack(">IBQ", 9 + len(data), kind, req_id) + data


def eval_frame(req_id: int, code: str | None, env_id: int = -1, variables: Any = None) -> bytes:
    return frame(EVAL, req_id, (env_id, code, "<t>", 0, variables or {}, False))


def write_all(fd: int, data: bytes) -> None:
    """Writes all of `data`: a signal may cut a write to a pipe short."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_exact(fd: int, n: int, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    out = b""
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError(f"no frame within {timeout} s")
        chunk = os.read(fd, n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return out


def read_raw_frame(fd: int, timeout: float = 10) -> tuple[int, int, bytes]:
    """A frame's kind, id and body, as read."""
    length, kind, req_id = struct.unpack(">IBQ", read_exact(fd, 13, timeout))
    return kind, req_id, read_exact(fd, length - 9, timeout)


def read_frame(fd: int, timeout: float = 10) -> tuple[int, int, Any]:
    kind, req_id, body = read_raw_frame(fd, timeout)
    return kind, req_id, pickle.loads(body) if body else None


def read_reply(fd: int, timeout: float = 10) -> tuple[int, int, Any, list[bytes]]:
    """A frame from the runner: kind, id, value, and the out-of-band buffers it came with."""
    kind, req_id, body = read_raw_frame(fd, timeout)
    raw: list[bytes] = []
    if kind & buffers.OUT_OF_BAND:
        kind &= ~buffers.OUT_OF_BAND
        (count,) = buffers.COUNT.unpack_from(body)
        start = buffers.COUNT.size + buffers.ENTRY.size * count  # where the pickle starts
        entries = list(buffers.ENTRY.iter_unpack(body[buffers.COUNT.size : start]))
        assert all(k == buffers.BYTES for k, _ in entries)
        end = len(body) - sum(n for _, n in entries)
        pos = end
        for _, n in entries:
            raw.append(body[pos : pos + n])
            pos += n
        body = body[start:end]
    return kind, req_id, pickle.loads(body, buffers=raw), raw


def roundtrip(value: Any) -> Any:
    """`value` encoded for Elixir and decoded again."""
    return pickle.loads(codec.encode(value))


class Peer:
    """``python -m snex`` in a child process, driven over its fd 3/4 pipes."""

    def __init__(self, extra_env: dict[str, str] | None = None, stderr: int | None = None) -> None:
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()

        def setup() -> None:
            # Move both above 4 first so that neither is clobbered, then onto 3 and 4.
            r = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)

        env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR), **(extra_env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "snex"],
            preexec_fn=setup,
            pass_fds=(3, 4),
            env=env,
            stderr=stderr,
        )
        os.close(to_r)
        os.close(from_w)
        self.next_id = 1
        # The runner announces its pid before it serves.
        length, kind, req_id = struct.unpack(">IBQ", self._read_exact(13))
        assert (length, kind, req_id) == (9, HELLO, self.proc.pid)

    def send(self, kind: int, req_id: int, body: Any = None) -> None:
        write_all(self.to_w, frame(kind, req_id, body))

    def _read_exact(self, n: int) -> bytes:
        return read_exact(self.from_r, n, 10)

    def recv(self) -> tuple[int, int, Any]:
        return read_frame(self.from_r)

    def eval(self, code: str | None, env_id: int = -1, variables: Any = None) -> tuple[int, Any]:
        req = self.next_id
        self.next_id += 1
        write_all(self.to_w, eval_frame(req, code, env_id, variables))
        kind, rid, body = self.recv()
        assert rid == req
        return kind, body

    def close(self) -> int:
        os.close(self.to_w)
        return self.proc.wait(timeout=10)


class LoopHarness:
    """A `Connection` served by an event loop in the main thread, with the cancellation signal
    handler installed; `run` plays Elixir from another thread. Objects put in `env` (the root
    environment) are visible to the code run."""

    def __init__(self, read_limit: int | None = None, eager_loop: bool = True) -> None:
        self.to_r, self.to_w = os.pipe()
        self.from_r, self.from_w = os.pipe()
        self.loop = eager.new_event_loop(eager_loop)
        self.conn = Connection(self.loop, self.to_r, self.from_w, read_limit)
        self.conn.eager = eager_loop
        self.previous = self.conn.cancel_signal().install()
        self.env = self.conn.envs[ROOT_ENV]
        # The runner would end this process where it ends the interpreter: record it instead.
        self.died: list[str] = []
        self._real_die = runner._die
        runner._die = self._die  # type: ignore[assignment]

    def _die(self, message: str, status: int) -> NoReturn:
        self.died.append(message)
        raise SystemExit(status)

    def send(self, data: bytes) -> None:
        write_all(self.to_w, data)

    def recv(self, timeout: float = 10) -> tuple[int, int, Any]:
        return read_frame(self.from_r, timeout)

    def signal(self) -> None:
        os.kill(os.getpid(), signal.SIGUSR2)

    def nothing_to_read(self, wait: float = 0.2) -> bool:
        return not select.select([self.from_r], [], [], wait)[0]

    def wait_until_sleeping(self, timeout: float = 5) -> None:
        """Waits until the main thread sleeps in the kernel (``time.sleep``). A signal that
        comes just before a blocking call starts is only handled when the call returns (the
        documented race of Python's signal handling): the tests signal once the call is on."""
        path = f"/proc/self/task/{os.getpid()}/wchan"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(path) as f:
                    if "sleep" in f.read():
                        return
            except OSError:  # no /proc: give it time
                time.sleep(0.2)
                return
            time.sleep(0.001)
        raise TimeoutError("the main thread did not sleep")

    def run(self, script: Callable[[LoopHarness], None], timeout: float = 30) -> None:
        """Serves until `script` (run in a thread) returns; re-raises what it raised."""
        errors: list[BaseException] = []

        def body() -> None:
            try:
                script(self)
            except BaseException as e:
                errors.append(e)
                # The loop may be stuck in code the script failed to cancel: get it out.
                _thread.interrupt_main()
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)

        thread = threading.Thread(target=body, daemon=True)
        thread.start()
        guard = self.loop.call_later(timeout, self.loop.stop)
        try:
            self.loop.run_forever()
        except KeyboardInterrupt:
            if not errors:
                raise
        guard.cancel()
        thread.join(timeout)
        if errors:
            raise errors[0]
        assert not thread.is_alive(), "the script did not finish"
        assert not self.died, f"the runner would have ended the interpreter: {self.died}"

    def close(self) -> None:
        runner._die = self._real_die  # type: ignore[assignment]
        signal.signal(signal.SIGUSR2, self.previous)
        self.loop.remove_reader(self.to_r)
        for task in list(self.conn.tasks.values()):
            task.cancel()
        for _ in range(2):  # a stop queued by a failed `run` ends the first try
            with contextlib.suppress(RuntimeError):
                self.loop.run_until_complete(asyncio.sleep(0))
                break
        self.loop.close()
        for fd in (self.to_r, self.to_w, self.from_r, self.from_w):
            os.close(fd)
