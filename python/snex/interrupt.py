"""Cancelling running Python code: the interpreter's ``SIGUSR2`` handler.

When Elixir gives up on a request (timeout, caller's death) it writes a ``CANCEL`` frame and
sends ``SIGUSR2`` to the interpreter (docs/protocol.md, "Cancellation"). Python runs the handler
in the main thread between two bytecodes, which also interrupts blocking calls that check for
signals (``time.sleep``, ``select``, reads of pipes and sockets, ``while True: pass``). The
handler reads what is already in the pipe without blocking and applies the ``CANCEL`` frames
found there at once (`Connection.absorb_cancels`): another request's task is cancelled, a
request that has not started yet is dropped, and if the request whose code is running now is
cancelled, ``asyncio.CancelledError`` is raised in that code, like ``KeyboardInterrupt`` for
Ctrl-C. Everything else read stays queued, in order, for the event loop.

The handler never raises while a frame is being written (it would leave half a frame in the
pipe): it leaves the cancellation to `Connection.write_frame`, which raises once the frame is
out. C code that does not check for signals (a long numpy call, a C extension's loop) is not
interrupted: its request is cancelled when it returns to Python.
"""

from __future__ import annotations

import asyncio
import os
import signal
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any

from .errors import report

if TYPE_CHECKING:
    from .runner import Connection

#: The signal Elixir sends after a CANCEL frame.
SIGNAL = signal.SIGUSR2


class CancelSignal:
    """The ``SIGUSR2`` handler of a `Connection` (install it with `install`)."""

    def __init__(self, conn: Connection, critical: tuple[CodeType, ...]) -> None:
        """A handler for `conn`; it never raises while one of the `critical` functions (those
        that write frames) is on the stack."""
        self.conn = conn
        self.critical = critical
        self.pid = os.getpid()
        self._active = False
        self._again = False

    def install(self) -> Any:
        """Makes this the handler of `SIGNAL` (main thread only); returns the previous one."""
        return signal.signal(SIGNAL, self)

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        """Applies the CANCEL frames that can be read now; raises ``CancelledError`` if the
        running request is one of them."""
        conn = self.conn
        if os.getpid() != self.pid:
            return  # a process forked from the interpreter, which inherited the handler
        if self._active:
            self._again = True  # a signal during the handler: read once more before returning
            return
        if conn.reader.busy or conn.absorbing:
            conn.signal_pending = True  # the loop is reading: it applies them right after
            return
        self._active = True
        target: int | None = None
        hit = False
        try:
            target = conn.running_request()
            while True:
                self._again = False
                hit = conn.absorb_cancels(target) or hit
                if not self._again:
                    break
        except Exception as e:  # noqa: BLE001 - never raise into the interrupted code by mistake
            report(f"snex: cancellation failed: {type(e).__name__}")
            return
        finally:
            self._active = False
        if not hit or target is None:
            return
        if self._in_critical(frame):
            conn.deferred_cancel = target
            return
        conn.cancelled_req = target
        raise asyncio.CancelledError

    def _in_critical(self, frame: FrameType | None) -> bool:
        critical = self.critical
        while frame is not None:
            if frame.f_code in critical:
                return True
            frame = frame.f_back
        return False
