"""Reading frames: the bytes read from the transport's read end, split into a queue of frames.

Frames are described in docs/protocol.md. A frame leaves the reader (`FrameReader.queue`) before
it is handled, so whatever happens while handling it, it is handled once. Reading may happen
either from the event loop (`FrameReader.read_once`, when the fd is readable) or from the
cancellation signal handler (`FrameReader.read_available`, see ``snex.interrupt``): both only
append to the queue, in order.
"""

from __future__ import annotations

import os
import select
import struct
from collections import deque
from typing import Any

from . import buffers
from .buffers import Target


class OutOfBand:
    """The body of a frame with out-of-band buffers: the pickle, and what the buffers were read
    into (`buffers.Target`); `values()` gives the objects for ``pickle.loads(buffers=...)``."""

    __slots__ = ("pickle", "size", "targets")

    def __init__(self, pickle: bytes | bytearray, targets: list[Target], size: int) -> None:
        """A body of `size` bytes on the wire."""
        self.pickle = pickle
        self.targets = targets
        self.size = size

    def __len__(self) -> int:
        return self.size

    def values(self) -> list[Any]:
        """The buffers' objects, in order."""
        return [target.value() for target in self.targets]


#: A frame body: a pickle, or a pickle with out-of-band buffers.
Body = bytes | bytearray | OutOfBand
#: A frame: ``(kind, id, body)``; the kind without `buffers.OUT_OF_BAND`.
Frame = tuple[int, int, Body]

HEADER = struct.Struct(">IBQ")
_LENGTH = struct.Struct(">I")
_KIND_ID = struct.Struct(">BQ")
#: The largest body a frame can carry: the length (a u32) counts kind and id too.
MAX_BODY = (1 << 32) - 1 - 9
#: Bodies this large are read straight into a buffer of their own size.
LARGE_BODY = 1 << 20
READ_CHUNK = 1 << 16
#: How long (seconds) the reader waits for more of a large frame before it goes back to the
#: event loop.
FOLLOW_WAIT = 0.005


class ProtocolError(Exception):
    """The bytes read are not frames: the transport is unusable."""


class FrameReader:
    """Turns what is read from `fd` into frames, queued in `queue` until they are handled.

    `read_limit` is how many bytes beyond the end of the frame being assembled may be read
    (``SNEX_READ_LIMIT``), or None for no limit beyond `READ_CHUNK` per read. `cancels` holds
    the ids of the frames of kind `cancel_kind` that are in the queue, so that a request can be
    checked against them without scanning it.
    """

    def __init__(self, fd: int, read_limit: int | None, cancel_kind: int) -> None:
        """A reader of the non-blocking `fd`."""
        self.fd = fd
        self.read_limit = read_limit
        self.cancel_kind = cancel_kind
        self.queue: deque[Frame] = deque()
        self.cancels: set[int] = set()
        #: True while `read_once` changes the reader's state: a signal handler must not read then.
        self.busy = False
        self._buf = bytearray()
        #: The frame whose large parts are being read straight into their own buffers.
        self._pending: _Pending | None = None

    def read_once(self, follow: bool = False) -> bool:
        """One read from the fd; the complete frames go to the queue. False at EOF; raises
        `BlockingIOError` when nothing is readable, `ProtocolError` on a malformed frame.

        With `follow`, the rest of a large frame being read is read as it arrives, waiting up
        to `FOLLOW_WAIT` at a time for more, instead of one read per call: Elixir is writing
        it now, and each return to the event loop costs a poll (10 MB: 4.1-6.0 ms against
        5.2-6.6 ms here)."""
        self.busy = True
        try:
            if self._pending is not None:
                return self._read_pending(follow)
            chunk = os.read(self.fd, self._read_size())
            if not chunk:
                return False
            if not self._buf and len(chunk) >= HEADER.size:
                # The usual read: exactly one small frame, queued without the buffer.
                length, kind, req_id = HEADER.unpack_from(chunk)
                if length + 4 == len(chunk) and not kind & buffers.OUT_OF_BAND:
                    self._enqueue(kind, req_id, chunk[HEADER.size :])
                    return True
            self._buf += chunk
            self._split()
            return True
        finally:
            self.busy = False

    def read_available(self) -> bool:
        """Reads what is readable now, without blocking: the frame being assembled, and more
        while the queued frames stay within the read-ahead limit. False at EOF."""
        while self.read_limit is None or self.queued_bytes() <= self.read_limit:
            try:
                if not self.read_once():
                    return False
            except BlockingIOError:
                return True
        return True

    def queued_bytes(self) -> int:
        """The size of the frames in the queue."""
        return sum(len(body) + HEADER.size for _, _, body in self.queue)

    def forget_cancel(self, req_id: int) -> None:
        """The CANCEL frame of `req_id` has left the queue."""
        self.cancels.discard(req_id)

    def _read_size(self) -> int:
        """How much the next read may take: the rest of the frame being assembled plus at most
        `read_limit` bytes beyond it, and never more than `READ_CHUNK`. What Python has not
        read stays queued on the Elixir side, where the busy limits see it."""
        limit = self.read_limit
        if limit is None or limit >= READ_CHUNK:
            return READ_CHUNK
        buf = self._buf
        if len(buf) >= 4:
            length: int = _LENGTH.unpack_from(buf)[0]
            need = 4 + length - len(buf)
        else:
            need = 4 - len(buf)
        return max(1, min(READ_CHUNK, need + limit))

    def _split(self) -> None:
        buf = self._buf
        size = len(buf)
        pos = 0
        while size - pos >= 4:
            (length,) = _LENGTH.unpack_from(buf, pos)
            if length < 9:
                raise ProtocolError(f"bad frame length {length}")
            if size - pos < HEADER.size:
                break
            kind, req_id = _KIND_ID.unpack_from(buf, pos + 4)
            if kind & buffers.OUT_OF_BAND:
                used = self._start_out_of_band(kind, req_id, length, pos)
                if used == 0:
                    break
                pos += used
                if self._pending is not None:
                    break
                continue
            end = pos + 4 + length
            if end > size:
                if length >= LARGE_BODY:
                    body = bytearray(length - 9)
                    self._pending = _Pending(kind, req_id, None, body, length - 9)
                    pos += HEADER.size + self._pending.fill(buf, pos + HEADER.size)
                break
            self._enqueue(kind, req_id, bytes(buf[pos + HEADER.size : end]))
            pos = end
        if pos:
            del buf[:pos]

    def _start_out_of_band(self, kind: int, req_id: int, length: int, pos: int) -> int:
        """Starts reading the frame with buffers at `pos` once its table is in the buffer: its
        pickle and each buffer get their own object, filled from what was read already and then
        straight from the fd. Returns how many bytes of the buffer it took (0: table not
        complete yet)."""
        buf = self._buf
        start = pos + HEADER.size
        if len(buf) - start < 4:
            return 0
        (count,) = buffers.COUNT.unpack_from(buf, start)
        body_len = length - 9
        table_len = 4 + count * buffers.ENTRY.size
        if not 0 < count <= buffers.MAX_BUFFERS or table_len >= body_len:
            raise ProtocolError(f"bad buffer table: {count} buffers in {body_len} bytes")
        if len(buf) - start < table_len:
            return 0
        targets: list[Target] = []
        left = body_len - table_len
        for i in range(count):
            buf_kind, buf_len = buffers.ENTRY.unpack_from(buf, start + 4 + i * buffers.ENTRY.size)
            if buf_kind > buffers.STR or buf_len >= left:
                raise ProtocolError("bad buffer table: buffers do not fit the frame")
            left -= buf_len
            targets.append(Target(buf_kind, buf_len))
        kind &= ~buffers.OUT_OF_BAND
        pending = _Pending(kind, req_id, targets, bytearray(left), body_len)
        self._pending = pending
        used: int = HEADER.size + table_len + pending.fill(buf, start + table_len)
        self._finish_pending()
        return used

    def _enqueue(self, kind: int, req_id: int, body: Body) -> None:
        if kind == self.cancel_kind:
            self.cancels.add(req_id)
        self.queue.append((kind, req_id, body))

    def _read_pending(self, follow: bool) -> bool:
        pending = self._pending
        assert pending is not None
        while True:
            try:
                n = os.readv(self.fd, [pending.rest()])
            except BlockingIOError:
                if not follow or not select.select((self.fd,), (), (), FOLLOW_WAIT)[0]:
                    raise
                continue
            if n == 0:
                return False
            pending.advance(n)
            if pending.done() or not follow or pending.left() < LARGE_BODY:
                break
        self._finish_pending()
        return True

    def _finish_pending(self) -> None:
        """Queues the frame being read once it is complete."""
        pending = self._pending
        if pending is not None and pending.done():
            self._pending = None
            self._enqueue(*pending.frame())


class _Pending:
    """A frame being read part by part straight into its parts' own buffers: the body (or the
    pickle of a frame with buffers), then each out-of-band buffer."""

    __slots__ = (
        "body",
        "filled",
        "have",
        "index",
        "kind",
        "req_id",
        "size",
        "targets",
        "total",
        "views",
    )

    def __init__(
        self,
        kind: int,
        req_id: int,
        targets: list[Target] | None,
        body: bytearray,
        size: int,
    ) -> None:
        self.kind = kind
        self.req_id = req_id
        self.targets = targets
        self.body = body
        self.views = [memoryview(body), *(t.view for t in targets or ())]
        self.index = 0
        self.have = 0
        self.size = size
        self.total = sum(len(v) for v in self.views)
        self.filled = 0
        self._skip_empty()

    def _skip_empty(self) -> None:
        while self.index < len(self.views) and self.have == len(self.views[self.index]):
            self.index += 1
            self.have = 0

    def left(self) -> int:
        """Bytes still to read."""
        return self.total - self.filled

    def done(self) -> bool:
        """True when every part is filled."""
        return self.index == len(self.views)

    def rest(self) -> memoryview:
        """The unfilled rest of the current part."""
        return self.views[self.index][self.have :]

    def advance(self, n: int) -> None:
        """`n` bytes were read into `rest()`."""
        self.have += n
        self.filled += n
        self._skip_empty()

    def fill(self, data: bytearray, pos: int) -> int:
        """Fills parts from `data[pos:]`; returns how many bytes it took."""
        taken = 0
        while not self.done() and pos + taken < len(data):
            rest = self.rest()
            n = min(len(rest), len(data) - pos - taken)
            rest[:n] = data[pos + taken : pos + taken + n]
            taken += n
            self.advance(n)
        return taken

    def frame(self) -> Frame:
        """The complete frame."""
        if self.targets is None:
            return (self.kind, self.req_id, self.body)
        return (self.kind, self.req_id, OutOfBand(self.body, self.targets, self.size))
