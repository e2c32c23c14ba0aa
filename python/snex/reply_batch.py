"""Replies written together: while the runner handles the frames of one read, the replies of
requests whose code is known to be quick are held and written with one system call when the
frames are handled, instead of one each.

A reply is held only while no code that may take long runs after it: before the runner runs a
request's code, it writes what is held, unless that same code (the same compiled code, or the
same function for ``Snex.call``) took less than `QUICK` seconds, its reply encoded, the last
time it ran here. And whatever happens, a helper thread writes what has been held for
`MAX_WAIT` seconds as soon as it gets the interpreter lock (within Python's switch interval,
5 ms by default, unless C code keeps the lock longer).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

#: Code that ran in less than this (seconds) last time is taken to be quick.
QUICK = 100e-6
#: The longest a reply is held (seconds) before the helper thread writes it.
MAX_WAIT = 1e-3
#: Frames larger than this (bytes) are written at once.
MAX_FRAME = 16 * 1024
#: What is held is written once it reaches this many bytes.
MAX_HELD = 256 * 1024
#: How many pieces of code are remembered as quick.
MAX_KNOWN = 1024


class ReplyBatch:
    """The held replies of the runner's main thread, and the code known to be quick.

    `write` writes bytes to Elixir; it is called with the batch's data in order, by whichever
    thread flushes, and must keep frames whole (the runner's write lock).
    """

    __slots__ = ("_flusher", "_held", "_lock", "_quick", "_size", "_wake", "depth", "write")

    def __init__(self, write: Callable[[Callable[[], bytes]], None]) -> None:
        """An empty batch, not holding. `write(take)` writes ``take()`` under the write lock,
        so that taking and writing are one step for frame order."""
        self.write = write
        self._held: list[bytes] = []
        self._size = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._flusher: threading.Thread | None = None
        self._quick: set[Hashable] = set()
        #: Nesting of the runs of frame handling: replies are held while it is positive.
        self.depth = 0

    def hold(self, frame: bytes) -> bool:
        """Holds `frame` if the batch is holding and the frame is small; False if it is not
        held (the caller writes it, after `flush`)."""
        if self.depth <= 0 or len(frame) > MAX_FRAME:
            return False
        with self._lock:
            self._held.append(frame)
            self._size += len(frame)
            if len(self._held) == 1:
                self._wake.notify()
        if self._flusher is None:
            self._flusher = threading.Thread(
                target=self._flush_late, name="snex-reply-batch", daemon=True
            )
            self._flusher.start()
        return True

    def holding(self) -> bool:
        """Whether anything is held."""
        return bool(self._held)

    def full(self) -> bool:
        """Whether what is held should be written now."""
        return self._size >= MAX_HELD

    def take(self) -> bytes:
        """What is held, in order, as one buffer; the batch is then empty."""
        with self._lock:
            held, self._held = self._held, []
            self._size = 0
        return b"".join(held)

    def flush(self) -> None:
        """Writes what is held."""
        if self.holding():
            self.write(self.take)

    def is_quick(self, key: Hashable | None) -> bool:
        """Whether the code `key` took less than `QUICK` the last time it ran."""
        return key is not None and key in self._quick

    def ran(self, key: Hashable | None, seconds: float) -> None:
        """The code `key` ran (and its reply was made) in `seconds`."""
        if key is None:
            return
        if seconds < QUICK:
            if len(self._quick) >= MAX_KNOWN:
                self._quick.clear()
            self._quick.add(key)
        else:
            self._quick.discard(key)

    def _flush_late(self) -> None:
        """The helper thread: writes what has been held for `MAX_WAIT`."""
        while True:
            with self._lock:
                while not self._held:
                    self._wake.wait()
                first = self._held[0]
                self._wake.wait(MAX_WAIT)
                late = bool(self._held) and self._held[0] is first
            if late:
                self.flush()
