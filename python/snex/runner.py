"""The interpreter's request loop: reads frames from Elixir, runs code, writes replies.

Frames and kinds are described in docs/protocol.md. All request handling happens on one asyncio
event loop; the read end is watched with ``loop.add_reader`` (no reader thread), and frames are
written with a lock so that any thread may write.
"""

from __future__ import annotations

import asyncio
import builtins
import contextvars
import inspect
import os
import sys
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any, NoReturn, Protocol

from . import buffers, capture, codec, direct, eager, interrupt, splice, streams
from .code import RETURN_NAME, SnexReturn, code_value, compile_code, run_code
from .errors import describe_exception, exception_text, format_exception, report
from .frames import HEADER, MAX_BODY, Body, FrameReader, ProtocolError
from .reply_batch import ReplyBatch
from .types import Atom, ElixirError, EncodeError

EVAL, MAKE_ENV, DESTROY_ENV, CANCEL, CALL_RESULT, CALL_FN = 1, 2, 3, 4, 5, 6
REPLY_OK, REPLY_ERROR, CALL, CAST, SEND, HELLO, OUTPUT = 128, 129, 130, 131, 132, 133, 134
#: Kinds of frame the runner may hold to write together (see `reply_batch`): replies only,
#: so that what user code sends (``snex.send``, output) goes at once.
_HELD_KINDS = frozenset((REPLY_OK, REPLY_ERROR))
#: Held replies are written before a body larger than this (bytes) is decoded.
_DECODE_WHILE_HOLDING = 64 * 1024

#: Exit status when the frames read are malformed (EX_SOFTWARE).
EXIT_PROTOCOL_ERROR = 70
#: Exit status when a frame cannot be written to Elixir (EX_IOERR).
EXIT_WRITE_FAILED = 74

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
    #: Whether `write_frame` takes out-of-band buffers.
    takes_buffers: bool

    def write_frame(
        self, kind: int, req_id: int, body: bytes = b"", out_of_band: Sequence[memoryview] = ()
    ) -> None: ...

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
        if entry is not None:
            _resolve_on_loop(entry, outcome)

    def settle_encoded(self, call_id: int, body: Body) -> None:
        """Resolves call `call_id` with the result encoded in `body`, as Elixir sends it
        (``(ok, value)``); a body that cannot be decoded fails the call."""
        try:
            ok, value = codec.decode(body)
            outcome: tuple[bool, Any] = (bool(ok), value)
        except BaseException as e:  # noqa: BLE001 - report to the waiting caller
            outcome = (False, f"cannot decode the call result: {exception_text(e)}")
        self.settle(call_id, outcome)

    def fail_all(self, message: str) -> None:
        """Resolves every call waiting as `settle` does with ``(False, message)``; the table
        is then empty."""
        with self._lock:
            calls, self._calls = self._calls, {}
        outcome = (False, message)
        for entry in calls.values():
            _resolve_on_loop(entry, outcome)


class Connection:
    """One link to the BEAM: a read fd and a write fd carrying frames.

    Each frame read leaves the reader's queue before it is handled, and whatever is raised
    while a request is decoded, run, encoded or replied to becomes that request's error reply:
    a request runs once and gets at most one reply, and the next one is served.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        read_fd: int,
        write_fd: int,
        read_limit: int | None = _READ_LIMIT,
    ) -> None:
        """Binds the link to `loop` and starts reading; `read_limit` as in
        `frames.FrameReader` (by default ``SNEX_READ_LIMIT``)."""
        self.loop = loop
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.pid = os.getpid()
        self.takes_buffers = True
        self.eager = _EAGER
        self._write_lock = threading.Lock()
        self.reader = FrameReader(read_fd, read_limit, CANCEL)
        self.envs: dict[int, dict[str, Any]] = {ROOT_ENV: self._make_root_env()}
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.calls = CallTable()
        #: The request whose synchronous code (`_run_sync`) is running.
        self._sync_req: int | None = None
        #: The request of the frame handled last (or being handled).
        self._dispatching: int | None = None
        #: The last request cancelled by raising ``CancelledError`` in its code (no reply).
        self.cancelled_req: int | None = None
        #: The running request was cancelled while it wrote a frame: raise once it is written.
        self.deferred_cancel: int | None = None
        #: A cancellation signal came while the loop was reading: look for CANCELs after it.
        self.signal_pending = False
        #: True while `absorb_cancels` runs: the signal handler must leave the queue alone.
        self.absorbing = False
        self._drain_scheduled = False
        #: Replies held while frames are handled, written together (see `reply_batch`).
        self.replies = ReplyBatch(self._write_taken)
        self._main_thread = threading.get_ident()
        self._context = contextvars.copy_context()
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

    def cancel_signal(self) -> interrupt.CancelSignal:
        """The ``SIGUSR2`` handler that cancels this connection's running code (not
        installed)."""
        return interrupt.CancelSignal(self, _FRAME_WRITERS)

    # -- writing -----------------------------------------------------------------------

    def write_frame(
        self, kind: int, req_id: int, body: bytes = b"", out_of_band: Sequence[memoryview] = ()
    ) -> None:
        """Writes one frame, with the out-of-band buffers of its pickle after it; safe from
        any thread. Raises `EncodeError` for a body too large for a frame. A frame that cannot
        be written ends the interpreter (exit status `EXIT_WRITE_FAILED`): the transport is
        gone, or holds part of a frame."""
        size = len(body)
        table = b""
        if out_of_band:
            table = buffers.COUNT.pack(len(out_of_band)) + b"".join(
                buffers.ENTRY.pack(buffers.BYTES, b.nbytes) for b in out_of_band
            )
            size += len(table) + sum(b.nbytes for b in out_of_band)
            kind |= buffers.OUT_OF_BAND
        if size > MAX_BODY:
            raise EncodeError(
                f"Cannot send {size} bytes to Elixir: a frame carries at most {MAX_BODY}"
            )
        head = HEADER.pack(9 + size, kind, req_id) + table
        # A small body is joined to its head (one copy); a large one is written from itself.
        whole = head + body if len(body) < 65536 else None
        main = threading.get_ident() == self._main_thread
        if (
            main
            and whole is not None
            and kind in _HELD_KINDS
            and not out_of_band
            and self.reader.queue  # more frames to handle now: worth waiting for their replies
            and self.replies.hold(whole)
        ):
            if self.replies.full():
                self.write_held()
            if self.deferred_cancel is not None:
                self._deliver_deferred_cancel()
            return
        parts: list[bytes | memoryview] = [head, body] if whole is None else [whole]
        parts += out_of_band
        with self._write_lock:
            # Replies held on this thread go first, in the same write.
            if main and self.replies.holding():
                parts.insert(0, self.replies.take())
            try:
                splice.write_all(self.write_fd, parts, len(out_of_band))
            except BaseException as e:  # noqa: BLE001 - half a frame may be out: no way back
                _write_failed(e)
        if self.deferred_cancel is not None:
            self._deliver_deferred_cancel()

    def write_held(self) -> None:
        """Writes the replies held so far."""
        self.replies.flush()

    def _write_taken(self, take: Callable[[], bytes]) -> None:
        """Writes ``take()`` (held replies) under the write lock: taken and written in one
        step, so that frames keep their order whichever thread writes them."""
        with self._write_lock:
            data = take()
            if not data:
                return
            try:
                splice.write_all(self.write_fd, [data])
            except BaseException as e:  # noqa: BLE001 - as in write_frame
                _write_failed(e)

    def _deliver_deferred_cancel(self) -> None:
        if threading.get_ident() != self._main_thread:
            return
        target = self.deferred_cancel
        self.deferred_cancel = None
        if target is not None and target == self.running_request():
            self.cancelled_req = target
            raise asyncio.CancelledError

    def reply_ok(self, req_id: int, value: Any) -> None:
        """Sends a value, or an encode error if it cannot be encoded; raises nothing but the
        ``CancelledError`` of a request cancelled meanwhile."""
        out_of_band: list[memoryview] = []
        try:
            body = codec.encode(value, root="result", out_of_band=out_of_band)
        except BaseException as e:  # noqa: BLE001 - whatever encoding raises is this reply's error
            self.reply_error(req_id, "encode_error", *_encode_failure(e))
            return
        try:
            self.write_frame(REPLY_OK, req_id, body, out_of_band)
        except EncodeError as e:  # too large for a frame: nothing was written
            self.reply_error(req_id, "encode_error", *_encode_failure(e))

    def send_output(self, req_id: int, stream: str, text: str) -> None:
        """Sends what request `req_id` printed on `stream` to its caller (``capture_output``)."""
        self.write_frame(OUTPUT, req_id, codec.encode((Atom(stream), text)))

    def reply_error(
        self,
        req_id: int,
        code: str,
        reason: str,
        tb: list[str] | None,
        python_type: str | None = None,
    ) -> None:
        """Sends an error reply (with the class name of the Python exception, if there is one);
        if it cannot be encoded, a fixed one. Raises nothing but the ``CancelledError`` of a
        request cancelled meanwhile."""
        try:
            body = codec.encode(
                (Atom(code), _plain_str(reason), _plain_lines(tb), _plain_type(python_type))
            )
        except BaseException:  # noqa: BLE001 - e.g. MemoryError: a reply that needs no memory
            body = _FALLBACK_ERROR
        self.write_frame(REPLY_ERROR, req_id, body)

    def _reply_exception(self, req_id: int, exc: BaseException) -> None:
        self.reply_error(
            req_id,
            "python_runtime_error",
            exception_text(exc),
            format_exception(exc),
            type(exc).__name__,
        )

    # -- reading -----------------------------------------------------------------------

    def _on_readable(self) -> None:
        reader = self.reader
        try:
            alive = reader.read_once(follow=True)
        except BlockingIOError:
            alive = True
        except ProtocolError as e:
            self._fatal(str(e))
        except OSError:
            alive = False
        except Exception as e:  # noqa: BLE001 - e.g. MemoryError for a buffer: see below
            self._reader_failed(e)
        if not alive:
            self._on_eof()
            return
        while self.signal_pending:
            self.signal_pending = False
            self.absorb_cancels(None)
        self._drain_queue()

    def _drain_queue(self) -> None:
        """Handles the queued frames in order; each leaves the queue before it is handled."""
        self.replies.depth += 1
        try:
            self._handle_queued()
        finally:
            self.replies.depth -= 1
            if self.replies.depth == 0:
                self.write_held()

    def _handle_queued(self) -> None:
        queue = self.reader.queue
        cancels = self.reader.cancels
        while queue:
            try:
                kind, req_id, body = queue.popleft()
            except IndexError:  # emptied by the cancellation signal handler meanwhile
                return
            if kind == EVAL and cancels and req_id in cancels:
                continue  # cancelled before it started: it does not run
            self._dispatching = req_id
            if len(body) > _DECODE_WHILE_HOLDING:
                self.write_held()  # decoding a large body takes time
            try:
                self._dispatch(kind, req_id, body)
            except BaseException as e:  # noqa: BLE001 - nothing may stop the loop
                self._dispatch_failed(kind, req_id, e)

    def _scheduled_drain(self) -> None:
        self._drain_scheduled = False
        self._drain_queue()

    def _on_eof(self) -> None:
        self.loop.remove_reader(self.read_fd)
        for task in list(self.tasks.values()):
            task.cancel()
        try:
            sys.stdout and sys.stdout.flush()
            sys.stderr and sys.stderr.flush()
        finally:
            os._exit(0)

    def _fatal(self, message: str) -> NoReturn:
        _die(f"snex: protocol error: {message}", EXIT_PROTOCOL_ERROR)

    def _reader_failed(self, exc: BaseException) -> NoReturn:
        """Reading frames failed half-way (no memory for a buffer, say): where the next frame
        starts is unknown, and a frame read again would run twice, so the interpreter ends."""
        _die(
            f"snex: cannot read frames any more, the interpreter stops: {describe_exception(exc)}",
            EXIT_PROTOCOL_ERROR,
        )

    # -- cancellation ------------------------------------------------------------------

    def running_request(self) -> int | None:
        """The request whose code is running now (synchronous code, or its task's current
        step), if any."""
        if self._sync_req is not None:
            return self._sync_req
        task = asyncio.current_task(self.loop)
        if task is None:
            return None
        for req_id, t in list(self.tasks.items()):
            if t is task:
                return req_id
        return None

    def absorb_cancels(self, target: int | None) -> bool:
        """Reads what can be read now and applies the queued CANCEL frames at once: their
        tasks are cancelled, requests not started yet are dropped. Returns whether request
        `target` (running now) is cancelled. Called by the cancellation signal handler, when
        the reader is not busy; frames left in the queue are handled by the loop right after.
        """
        reader = self.reader
        hit = False
        self.absorbing = True
        try:
            try:
                reader.read_available()
            except ProtocolError as e:
                self._fatal(str(e))
            except OSError:
                pass  # EOF or a broken pipe: the loop sees it when it reads
            except Exception as e:  # noqa: BLE001 - the reader's state is lost: see _on_readable
                self._reader_failed(e)
            if reader.cancels:
                hit = self._apply_queued_cancels(target)
            if reader.queue and not self._drain_scheduled:
                self._drain_scheduled = True
                self.loop.call_soon_threadsafe(self._scheduled_drain, context=self._context)
        except BaseException as e:  # noqa: BLE001 - never raise into the interrupted code
            report(f"snex: cancellation failed: {describe_exception(e)}")
        finally:
            self.absorbing = False
        return hit

    def _apply_queued_cancels(self, target: int | None) -> bool:
        reader = self.reader
        cancelled = set(reader.cancels)
        hit = False
        kept = []
        for frame in list(reader.queue):
            kind, req_id, _ = frame
            if kind == CANCEL:
                task = self.tasks.get(req_id)
                if req_id == target:
                    hit = True
                elif task is not None:
                    task.cancel()
                elif req_id == self._dispatching:
                    self.cancelled_req = req_id  # being prepared: its code will not run
            elif not (kind == EVAL and req_id in cancelled):
                kept.append(frame)
        reader.queue.clear()
        reader.queue.extend(kept)
        reader.cancels.clear()
        return hit

    # -- requests ----------------------------------------------------------------------

    def _dispatch(self, kind: int, req_id: int, body: Body) -> None:
        if kind == EVAL:
            self._eval(req_id, body)
        elif kind == MAKE_ENV:
            self._make_env(req_id, body)
        elif kind == DESTROY_ENV:
            env = self.envs.pop(req_id, None)
            if env is not None:
                streams.discard(env)
        elif kind == CANCEL:
            self.reader.forget_cancel(req_id)
            task = self.tasks.get(req_id)
            if task is not None:
                task.cancel()
        elif kind == CALL_RESULT:
            self._call_result(req_id, body)
        elif kind == CALL_FN:
            self._call_fn(req_id, body)
        else:
            self._fatal(f"unknown frame kind {kind}")

    def _dispatch_failed(self, kind: int, req_id: int, exc: BaseException) -> None:
        """Something escaped the handling of a frame: the request's error reply."""
        self._sync_req = None
        if isinstance(exc, asyncio.CancelledError) and req_id == self.cancelled_req:
            return  # cancelled by Elixir: no reply
        if kind in (EVAL, MAKE_ENV, CALL_FN):
            reason = f"Snex failed to handle the request: {describe_exception(exc)}"
            self.reply_error(req_id, "internal_error", reason, format_exception(exc))
        else:
            report(f"snex: failed to handle a frame of kind {kind}: {describe_exception(exc)}")

    def _env(self, env_id: int) -> dict[str, Any] | None:
        if env_id == THROWAWAY_ENV:
            return dict(self.envs[ROOT_ENV])
        return self.envs.get(env_id)

    def _eval(self, req_id: int, body: Body) -> None:
        try:
            env_id, src, file, line, variables, capture_output = codec.decode(body)
        except BaseException as e:  # noqa: BLE001 - any decode failure is that request's error
            self._reply_decode_failure(req_id, e)
            return
        if capture_output:
            token = capture.current.set(req_id)
            try:
                self._eval_in(req_id, env_id, src, file, line, variables)
            finally:
                capture.current.reset(token)
        else:
            self._eval_in(req_id, env_id, src, file, line, variables)

    def _eval_in(
        self,
        req_id: int,
        env_id: int,
        src: str | None,
        file: str,
        line: int,
        variables: dict[str, Any],
    ) -> None:
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
            self._run_sync(req_id, EVAL, lambda: run_code(code, env), await_result=False, key=code)
        else:
            self._start_task(req_id, EVAL, code_value(code, env))

    def _run_sync(
        self,
        req_id: int,
        kind: int,
        run: Callable[[], Any],
        *,
        await_result: bool,
        key: Hashable | None = None,
    ) -> None:
        """Runs request `req_id` (of frame kind `kind`) synchronously and replies with what
        `run` returns; with `await_result`, an awaitable result is awaited in a task first.
        `key` names the code run, for `ReplyBatch`: held replies are written first unless
        it is known to be quick."""
        error: BaseException | None = None
        value = None
        if not self.replies.is_quick(key):
            self.write_held()
        started = time.perf_counter()
        try:
            self._sync_req = req_id  # from here, cancelling it raises in it
            if req_id != self.cancelled_req:  # not cancelled while it was prepared
                value = run()
        except BaseException as e:  # noqa: BLE001 - SystemExit etc. are errors of this call
            error = e
        finally:
            self._sync_req = None
        try:
            self._reply_sync(req_id, kind, value, error, await_result=await_result)
        finally:
            # What it took, its reply included: encoding a large result takes time too.
            self.replies.ran(key, time.perf_counter() - started)

    def _reply_sync(
        self,
        req_id: int,
        kind: int,
        value: Any,
        error: BaseException | None,
        *,
        await_result: bool,
    ) -> None:
        """The reply to a request run by `_run_sync`."""
        if req_id == self.cancelled_req:
            return  # Elixir has dropped the request: no reply
        if error is not None:
            self._reply_exception(req_id, error)
        elif await_result and inspect.isawaitable(value):
            self._start_task(req_id, kind, value)
        else:
            self.reply_ok(req_id, value)

    def _start_task(self, req_id: int, kind: int, awaitable: Any) -> None:
        self.write_held()  # the task may start running at once, for any time
        task = self.loop.create_task(self._await_reply(req_id, kind, awaitable))
        if not task.done():  # an eager task may have finished already
            self.tasks[req_id] = task

    async def _await_reply(self, req_id: int, kind: int, awaitable: Any) -> None:
        """Awaits request `req_id`'s awaitable in its task and replies with its value."""
        task = asyncio.current_task()
        if task is not None:  # already there, unless the task started eagerly
            self.tasks[req_id] = task
        try:
            try:
                if req_id == self.cancelled_req:  # cancelled while it was prepared
                    if inspect.iscoroutine(awaitable):
                        awaitable.close()
                    return
                value = await awaitable
            except asyncio.CancelledError:
                pass  # Elixir has dropped the request; no reply.
            except BaseException as e:  # noqa: BLE001 - SystemExit etc. are errors of this call
                self._reply_exception(req_id, e)
            else:
                self.reply_ok(req_id, value)
        except asyncio.CancelledError:
            pass  # cancelled while replying: Elixir does not want the reply
        except BaseException as e:  # noqa: BLE001 - the reply path must not lose the request
            self._dispatch_failed(kind, req_id, e)
        finally:
            self.tasks.pop(req_id, None)

    def _call_fn(self, req_id: int, body: Body) -> None:
        """``Snex.call``: calls a module's function by name, with no code to compile; awaits its
        result in a task only if it is awaitable."""
        try:
            env_id, module, function, args, kwargs = codec.decode(body)
        except BaseException as e:  # noqa: BLE001 - any decode failure is that request's error
            self._reply_decode_failure(req_id, e)
            return
        if env_id != THROWAWAY_ENV and env_id not in self.envs:
            self.reply_error(req_id, "env_not_found", f"environment {env_id} does not exist", None)
            return
        self._run_sync(
            req_id,
            CALL_FN,
            lambda: direct.lookup(module, function)(*args, **kwargs),
            await_result=True,
            key=(module, function),
        )

    def _reply_decode_failure(self, req_id: int, exc: BaseException) -> None:
        reason = f"cannot build the Python values: {exception_text(exc)}"
        self.reply_error(req_id, "encode_error", reason, None)

    def _make_env(self, req_id: int, body: Body) -> None:
        try:
            new_id, sources, variables = codec.decode(body)
        except BaseException as e:  # noqa: BLE001 - any decode failure is that request's error
            self._reply_decode_failure(req_id, e)
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

    def _call_result(self, call_id: int, body: Body) -> None:
        self.write_held()  # the code waiting for it may go on at once
        self.calls.settle_encoded(call_id, body)

    def live_env_count(self) -> int:
        """How many environments exist (the root included)."""
        return len(self.envs)


#: The functions that write frames: the cancellation signal handler does not raise in them.
_FRAME_WRITERS = (
    Connection.write_frame.__code__,
    Connection.write_held.__code__,
    Connection._write_taken.__code__,
)


def _resolve_on_loop(
    entry: tuple[asyncio.Future[Any], asyncio.AbstractEventLoop], outcome: tuple[bool, Any]
) -> None:
    """Resolves a call's future with `outcome` on the future's own loop."""
    fut, loop = entry
    if asyncio._get_running_loop() is loop:
        _resolve(fut, outcome)  # already on the future's loop: no wake-up needed
    else:
        loop.call_soon_threadsafe(_resolve, fut, outcome)


def _resolve(fut: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if fut.done():
        return
    ok, value = outcome
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(ElixirError(value))


def _write_failed(exc: BaseException) -> NoReturn:
    _die(
        "snex: cannot write to Elixir, the interpreter stops "
        f"(exit status {EXIT_WRITE_FAILED}): {describe_exception(exc)}",
        EXIT_WRITE_FAILED,
    )


def _die(message: str, status: int) -> NoReturn:
    report(message)
    os._exit(status)


def _encode_failure(exc: BaseException) -> tuple[str, list[str] | None]:
    """The reason and traceback of an encode error reply for `exc`, raised while encoding."""
    if isinstance(exc, EncodeError):
        cause = exc.__cause__
        return exception_text(exc), None if cause is None else format_exception(cause)
    return f"Cannot serialize value: {describe_exception(exc)}", format_exception(exc)


def _plain_type(name: Any) -> str | None:
    return name if type(name) is str else None


def _plain_str(text: Any) -> str:
    if type(text) is str:
        return text
    try:
        return str.__str__(text) if isinstance(text, str) else repr(text)
    except BaseException:  # noqa: BLE001 - the reason is not essential
        return "<no reason>"


def _plain_lines(lines: Any) -> list[str] | None:
    if lines is None:
        return None
    try:
        return [_plain_str(line) for line in lines]
    except BaseException:  # noqa: BLE001 - the traceback is not essential
        return None


#: The error reply used when the real one cannot be encoded (e.g. out of memory).
_FALLBACK_ERROR = codec.encode(
    (Atom("internal_error"), "Snex could not build the error reply of this request", None)
)


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
    # The handler first: Elixir signals the pid of the HELLO frame, and SIGUSR2 would
    # otherwise end the process.
    _connection.cancel_signal().install()
    capture.install(_connection.send_output)
    _connection.write_frame(HELLO, os.getpid())
    loop.run_forever()
