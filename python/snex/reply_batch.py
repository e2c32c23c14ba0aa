"""Replies written together: while the runner handles the frames of one read, the replies of
requests whose code is known to be quick are held and written with one system call when the
frames are handled, instead of one each.

A reply is held only while no code that may take long runs after it: before the runner runs a
request's code, it writes what is held, unless that same code (the same compiled code, or the
same function for ``Snex.call``) took less than `QUICK` seconds the last time it ran here. So a
reply waits at most for the quick requests read with it, or for one quick request that was slow
this time.
"""

from __future__ import annotations

from collections.abc import Hashable

#: Code that ran in less than this (seconds) last time is taken to be quick.
QUICK = 100e-6
#: Frames larger than this (bytes) are written at once.
MAX_FRAME = 16 * 1024
#: What is held is written once it reaches this many bytes.
MAX_HELD = 256 * 1024
#: How many pieces of code are remembered as quick.
MAX_KNOWN = 1024


class ReplyBatch:
    """The held replies of the runner's main thread, and the code known to be quick."""

    __slots__ = ("_held", "_quick", "_size", "depth")

    def __init__(self) -> None:
        """An empty batch, not holding."""
        self._held: list[bytes] = []
        self._size = 0
        self._quick: set[Hashable] = set()
        #: Nesting of the runs of frame handling: replies are held while it is positive.
        self.depth = 0

    def hold(self, frame: bytes) -> bool:
        """Holds `frame` if the batch is holding and the frame is small; False if it is not
        held (the caller writes it)."""
        if self.depth <= 0 or len(frame) > MAX_FRAME:
            return False
        self._held.append(frame)
        self._size += len(frame)
        return True

    def full(self) -> bool:
        """Whether what is held should be written now."""
        return self._size >= MAX_HELD

    def take(self) -> bytes:
        """What is held, in order, as one buffer; the batch is then empty."""
        data = b"".join(self._held)
        self._held.clear()
        self._size = 0
        return data

    def is_quick(self, key: Hashable | None) -> bool:
        """Whether the code `key` took less than `QUICK` the last time it ran."""
        return key is not None and key in self._quick

    def ran(self, key: Hashable | None, seconds: float) -> None:
        """The code `key` ran for `seconds`."""
        if key is None:
            return
        if seconds < QUICK:
            if len(self._quick) >= MAX_KNOWN:
                self._quick.clear()
            self._quick.add(key)
        else:
            self._quick.discard(key)
