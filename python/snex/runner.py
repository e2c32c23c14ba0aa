"""The interpreter's request loop: reads frames from Elixir, runs code, writes replies.

Frames and kinds are described in docs/protocol.md. All request handling happens on one asyncio
event loop; the read end is watched with ``loop.add_reader`` (no reader thread), and frames are
written with a lock so that any thread may write.
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
import os
import struct
import sys
import threading
import traceback
from types import CodeType, TracebackType
from typing import Any, Protocol

from . import codec, eager
from .code import RETURN_NAME, SnexReturn, compile_code
from .types import Atom, ElixirError, EncodeError

EVAL, MAKE_ENV, DESTROY_ENV, CANCEL, CALL_RESULT = 1, 2, 3, 4, 5
REPLY_OK, REPLY_ERROR, CALL, CAST, SEND = 128, 129, 130, 131, 132

_HEADER = struct.Struct(">IBQ")
_LARGE_BODY = 1 << 20
_READ_CHUNK = 1 << 16
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

ROOT_ENV = 0
THROWAWAY_ENV = -1


def parse_read_limit(value: str | None) -> int | None:
    """The reader's read-ahead limit from ``SNEX_READ_LIMIT``: a byte count, or None (no limit
    beyond the 64 KiB read size) when unset or not a non-negative integer."""
    if value is None:
        return None
    try:
        limit = int(value)
    except ValueError:
        return None
    return limit if limit >= 0 else None


_READ_LIMIT = parse_read_limit(os.environ.get("SNEX_READ_LIMIT"))
#: ``eager_polyfill?``: the eager event loop, and code without ``await`` run without a task.
_EAGER = os.environ.get("SNEX_EAGER", "1") != "0"


class Link(Protocol):
    """What ``send``, ``cast`` and ``call`` need: the interpreter's `Connection`, or a worker
    process's link through it (``snex.workers``)."""

    pid: int

    def write_frame(self, kind: int, req_id: int, body: bytes = b"") -> None: ...

    def register_call(self, fut: asyncio.Future[Any], loop: asyncio.AbstractEventLoop) -> int: ...

    def forget_call(self, call_id: int) -> None: ...


_connection: Connection | None = None
_link: Link | None = None


class CallTable:
    """Futures of ``snex.call``s waiting for their results, by call id; thread-safe."""

    def __init__(self) -> None:
        """An empty table."""
        self._lock = threading.Lock()
        self._calls: dict[int, tuple[asyncio.Future[Any], asyncio.AbstractEventLoop]] = {}
        self._next = 1

    def register(self, fut: asyncio.Future[Any], loop: asyncio.AbstractEventLoop) -> int:
        """Registers a future (before its call is written); returns the call id."""
        with self._lock:
            call_id = self._next
            self._next += 1
            self._calls[call_id] = (fut, loop)
        return call_id

    def forget(self, call_id: int) -> None:
        """Drops a call whose caller is gone."""
        with self._lock:
            self._calls.pop(call_id, None)

    def settle(self, call_id: int, outcome: tuple[bool, Any]) -> None:
        """Resolves call `call_id` on its own loop: ``(True, value)`` or ``(False, message)``."""
        with self._lock:
            entry = self._calls.pop(call_id, None)
        if entry is None:
            return
        fut, loop = entry
        if asyncio._get_running_loop() is loop:
            _resolve(fut, outcome)  # already on the future's loop: no wake-up needed
        else:
            loop.call_soon_threadsafe(_resolve, fut, outcome)


class Connection:
    """One link to the BEAM: a read fd and a write fd carrying frames."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_fd: int, write_fd: int) -> None:
        """Binds the link to `loop` and starts reading."""
        self.loop = loop
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.pid = os.getpid()
        self.eager = _EAGER
        self._write_lock = threading.Lock()
        self._buf = bytearray()
        self._pending_body: tuple[int, int, bytearray, int] | None = None
        self.envs: dict[int, dict[str, Any]] = {ROOT_ENV: self._make_root_env()}
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.calls = CallTable()
        os.set_blocking(read_fd, False)
        loop.add_reader(read_fd, self._on_readable)

    @staticmethod
    def _make_root_env() -> dict[str, Any]:
        import snex

        env_builtins = dict(vars(builtins))
        env_builtins[RETURN_NAME] = SnexReturn
        return {
            "__builtins__": env_builtins,
            "__name__": "__main__",
            "snex": snex,
            "Elixir": snex.Elixir,
        }

    # -- writing -----------------------------------------------------------------------

    def write_frame(self, kind: int, req_id: int, body: bytes = b"") -> None:
        """Writes one frame; safe from any thread."""
        header = _HEADER.pack(9 + len(body), kind, req_id)
        with self._write_lock:
            if len(body) < 65536:
                _write_all(self.write_fd, [header + body])
            else:
                _write_all(self.write_fd, [header, body])

    def reply_ok(self, req_id: int, value: Any) -> None:
        """Sends a value, or an encode error if it cannot be encoded."""
        try:
            body = codec.encode(value)
        except EncodeError as e:
            self.reply_error(req_id, "encode_error", str(e), None)
            return
        self.write_frame(REPLY_OK, req_id, body)

    def reply_error(self, req_id: int, code: str, reason: str, tb: list[str] | None) -> None:
        """Sends an error reply."""
        self.write_frame(REPLY_ERROR, req_id, codec.encode((Atom(code), reason, tb)))

    # -- reading -----------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            if self._pending_body is not None:
                self._read_large_body()
                return
            chunk = os.read(self.read_fd, self._read_size())
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._on_eof()
            return
        self._buf += chunk
        self._parse()

    def _read_size(self) -> int:
        """How much the next read may take: the rest of the frame being assembled plus at most
        ``SNEX_READ_LIMIT`` bytes beyond it (the high watermark of ``busy_limits_port``), and
        never more than 64 KiB. What Python has not read stays queued on the Elixir side, where
        the busy limits see it."""
        limit = _READ_LIMIT
        if limit is None or limit >= _READ_CHUNK:
            return _READ_CHUNK
        buf = self._buf
        if len(buf) >= 4:
            length: int = struct.unpack_from(">I", buf)[0]
            need = 4 + length - len(buf)
        else:
            need = 4 - len(buf)
        return max(1, min(_READ_CHUNK, need + limit))

    def _parse(self) -> None:
        buf = self._buf
        pos = 0
        while len(buf) - pos >= 4:
            (length,) = struct.unpack_from(">I", buf, pos)
            if length < 9:
                self._fatal(f"bad frame length {length}")
                return
            if len(buf) - pos < 4 + length and length >= _LARGE_BODY:
                kind, req_id = (
                    struct.unpack_from(">BQ", buf, pos + 4)
                    if len(buf) - pos >= 13
                    else (None, None)
                )
                if kind is None:
                    break
                body = bytearray(length - 9)
                have = len(buf) - pos - 13
                body[:have] = buf[pos + 13 :]
                self._pending_body = (kind, req_id, body, have)
                pos = len(buf)
                break
            if len(buf) - pos < 4 + length:
                break
            kind, req_id = struct.unpack_from(">BQ", buf, pos + 4)
            body_view = bytes(buf[pos + 13 : pos + 4 + length])
            pos += 4 + length
            self._dispatch(kind, req_id, body_view)
        del buf[:pos]

    def _read_large_body(self) -> None:
        assert self._pending_body is not None
        kind, req_id, body, have = self._pending_body
        n = os.readv(self.read_fd, [memoryview(body)[have:]])
        if n == 0:
            self._on_eof()
            return
        have += n
        if have < len(body):
            self._pending_body = (kind, req_id, body, have)
            return
        self._pending_body = None
        self._dispatch(kind, req_id, body)

    def _on_eof(self) -> None:
        self.loop.remove_reader(self.read_fd)
        for task in list(self.tasks.values()):
            task.cancel()
        try:
            sys.stdout and sys.stdout.flush()
            sys.stderr and sys.stderr.flush()
        finally:
            os._exit(0)

    def _fatal(self, message: str) -> None:
        print(f"snex: protocol error: {message}", file=sys.stderr)
        os._exit(70)

    # -- requests ----------------------------------------------------------------------

    def _dispatch(self, kind: int, req_id: int, body: bytes | bytearray) -> None:
        if kind == EVAL:
            self._eval(req_id, body)
        elif kind == MAKE_ENV:
            self._make_env(req_id, body)
        elif kind == DESTROY_ENV:
            self.envs.pop(req_id, None)
        elif kind == CANCEL:
            task = self.tasks.get(req_id)
            if task is not None:
                task.cancel()
        elif kind == CALL_RESULT:
            self._call_result(req_id, body)
        else:
            self._fatal(f"unknown frame kind {kind}")

    def _env(self, env_id: int) -> dict[str, Any] | None:
        if env_id == THROWAWAY_ENV:
            return dict(self.envs[ROOT_ENV])
        return self.envs.get(env_id)

    def _eval(self, req_id: int, body: bytes | bytearray) -> None:
        try:
            env_id, src, file, line, variables = codec.decode(body)
        except Exception as e:  # noqa: BLE001 - any decode failure is that request's error
            self.reply_error(req_id, "encode_error", f"cannot build the Python values: {e}", None)
            return
        env = self._env(env_id)
        if env is None:
            self.reply_error(req_id, "env_not_found", f"environment {env_id} does not exist", None)
            return
        if variables:
            env.update(variables)
        if src is None:
            self.reply_ok(req_id, None)
            return
        try:
            code = compile_code(src, file, line)
        except BaseException as e:  # noqa: BLE001 - any compile failure is the caller's error
            self._reply_exception(req_id, e)
            return
        if self.eager and not code.co_flags & inspect.CO_COROUTINE:
            self._run_sync(req_id, code, env)
        else:
            task = self.loop.create_task(self._run_async(req_id, code, env))
            if not task.done():  # an eager task may have finished already
                self.tasks[req_id] = task

    def _run_sync(self, req_id: int, code: CodeType, env: dict[str, Any]) -> None:
        try:
            exec(code, env)  # noqa: S102 - running the caller's code is the point
        except SnexReturn as r:
            self.reply_ok(req_id, r.value)
        except BaseException as e:  # noqa: BLE001 - SystemExit etc. are errors of this call
            self._reply_exception(req_id, e)
        else:
            self.reply_ok(req_id, None)

    async def _run_async(self, req_id: int, code: CodeType, env: dict[str, Any]) -> None:
        try:
            result = eval(code, env)  # noqa: S307 - running the caller's code is the point
            if inspect.iscoroutine(result):
                await result
        except SnexReturn as r:
            self.reply_ok(req_id, r.value)
        except asyncio.CancelledError:
            pass  # Elixir has dropped the request; no reply.
        except BaseException as e:  # noqa: BLE001 - SystemExit etc. are errors of this call
            self._reply_exception(req_id, e)
        else:
            self.reply_ok(req_id, None)
        finally:
            self.tasks.pop(req_id, None)

    def _reply_exception(self, req_id: int, exc: BaseException) -> None:
        self.reply_error(
            req_id, "python_runtime_error", str(exc) or type(exc).__name__, format_exception(exc)
        )

    def _make_env(self, req_id: int, body: bytes | bytearray) -> None:
        try:
            new_id, sources, variables = codec.decode(body)
        except Exception as e:  # noqa: BLE001 - any decode failure is that request's error
            self.reply_error(req_id, "encode_error", f"cannot build the Python values: {e}", None)
            return
        env = dict(self.envs[ROOT_ENV])
        for src_id, mode, names in sources:
            src = self.envs.get(src_id)
            if src is None:
                self.reply_error(
                    req_id, "env_not_found", f"environment {src_id} does not exist", None
                )
                return
            if mode == 1:
                missing = [n for n in names if n not in src]
                if missing:
                    self.reply_error(
                        req_id, "env_key_not_found", f"no variable(s) {missing} in the env", None
                    )
                    return
                env.update({n: src[n] for n in names})
            elif mode == 2:
                excluded = set(names)
                env.update({k: v for k, v in src.items() if k not in excluded})
            else:
                env.update(src)
        env.update(variables)
        self.envs[new_id] = env
        self.reply_ok(req_id, None)

    # -- calls to the BEAM ------------------------------------------------------------

    def register_call(self, fut: asyncio.Future[Any], loop: asyncio.AbstractEventLoop) -> int:
        """Registers a future for a call's result before the call is written."""
        return self.calls.register(fut, loop)

    def forget_call(self, call_id: int) -> None:
        """Drops a call whose caller is gone."""
        self.calls.forget(call_id)

    def _call_result(self, call_id: int, body: bytes | bytearray) -> None:
        try:
            ok, value = codec.decode(body)
            outcome: tuple[bool, Any] = (bool(ok), value)
        except Exception as e:  # noqa: BLE001 - report to the waiting caller
            outcome = (False, f"cannot decode the call result: {e}")
        self.calls.settle(call_id, outcome)

    def live_env_count(self) -> int:
        """How many environments exist (the root included)."""
        return len(self.envs)


def _resolve(fut: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if fut.done():
        return
    ok, value = outcome
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(ElixirError(value))


def _write_all(fd: int, parts: list[bytes]) -> None:
    views = [memoryview(p) for p in parts]
    while views:
        n = os.writev(fd, views)
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if views and n:
            views[0] = views[0][n:]


def format_exception(exc: BaseException) -> list[str]:
    """The traceback of `exc` without Snex's own frames."""
    tb: TracebackType | None = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        tb = tb.tb_next
    return traceback.format_exception(type(exc), exc, tb)


def connection() -> Connection:
    """The interpreter's own link to the BEAM."""
    if _connection is None:
        raise RuntimeError("snex is not running inside a Snex interpreter")
    return _connection


def set_link(link: Link | None) -> None:
    """Uses `link` for ``send``, ``cast`` and ``call`` of this (worker) process; None: none."""
    global _link
    _link = link


def link() -> Link:
    """The link ``send``, ``cast`` and ``call`` use in this process."""
    current: Link | None = _link if _link is not None else _connection
    if current is None:
        raise RuntimeError(
            "snex is not connected to the BEAM in this process: in a worker process, "
            "use snex.serve(reader, writer) on a connection to snex.io_loop_for_connection"
        )
    if current.pid != os.getpid():
        raise RuntimeError(
            "this process was forked from a Snex interpreter and cannot reuse its link to the "
            "BEAM: use snex.serve(reader, writer) on a connection to snex.io_loop_for_connection"
        )
    return current


def live_env_count() -> int:
    """How many environments exist in this interpreter (the root included)."""
    return connection().live_env_count()


def main() -> None:
    """Entry point of ``python -m snex``."""
    global _connection
    if os.environ.get("SNEX_USE_STDIO") == "1":
        read_fd, write_fd = os.dup(0), os.dup(1)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(2, 1)
        os.close(devnull)
        sys.stdin = None
        sys.stdout = None
    else:
        read_fd, write_fd = 3, 4
    # Deeply nested values are encoded recursively by the C pickler.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
    loop = eager.new_event_loop(_EAGER)
    asyncio.set_event_loop(loop)
    _connection = Connection(loop, read_fd, write_fd)
    loop.run_forever()
