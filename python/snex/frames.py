"""Reading frames: the bytes read from the transport's read end, split into a queue of frames.

Frames are described in docs/protocol.md. A frame leaves the reader (`FrameReader.queue`) before
it is handled, so whatever happens while handling it, it is handled once. Reading may happen
either from the event loop (`FrameReader.read_once`, when the fd is readable) or from the
cancellation signal handler (`FrameReader.read_available`, see ``snex.interrupt``): both only
append to the queue, in order.
"""

from __future__ import annotations

import os
import struct
from collections import deque

#: A frame: ``(kind, id, body)``.
Frame = tuple[int, int, bytes | bytearray]

HEADER = struct.Struct(">IBQ")
_LENGTH = struct.Struct(">I")
_KIND_ID = struct.Struct(">BQ")
#: The largest body a frame can carry: the length (a u32) counts kind and id too.
MAX_BODY = (1 << 32) - 1 - 9
#: Bodies this large are read straight into a buffer of their own size.
LARGE_BODY = 1 << 20
READ_CHUNK = 1 << 16


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
        self._pending: tuple[int, int, bytearray, int] | None = None

    def read_once(self) -> bool:
        """One read from the fd; the complete frames go to the queue. False at EOF; raises
        `BlockingIOError` when nothing is readable, `ProtocolError` on a malformed frame."""
        self.busy = True
        try:
            if self._pending is not None:
                return self._read_large_body()
            chunk = os.read(self.fd, self._read_size())
            if not chunk:
                return False
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
        queue = self.queue
        size = len(buf)
        pos = 0
        while size - pos >= 4:
            (length,) = _LENGTH.unpack_from(buf, pos)
            if length < 9:
                raise ProtocolError(f"bad frame length {length}")
            end = pos + 4 + length
            if end > size:
                if length >= LARGE_BODY and size - pos >= HEADER.size:
                    kind, req_id = _KIND_ID.unpack_from(buf, pos + 4)
                    body = bytearray(length - 9)
                    have = size - pos - HEADER.size
                    body[:have] = buf[pos + HEADER.size :]
                    self._pending = (kind, req_id, body, have)
                    pos = size
                break
            kind, req_id = _KIND_ID.unpack_from(buf, pos + 4)
            if kind == self.cancel_kind:
                self.cancels.add(req_id)
            queue.append((kind, req_id, bytes(buf[pos + HEADER.size : end])))
            pos = end
        if pos:
            del buf[:pos]

    def _read_large_body(self) -> bool:
        assert self._pending is not None
        kind, req_id, body, have = self._pending
        n = os.readv(self.fd, [memoryview(body)[have:]])
        if n == 0:
            return False
        have += n
        if have < len(body):
            self._pending = (kind, req_id, body, have)
            return True
        self._pending = None
        if kind == self.cancel_kind:
            self.cancels.add(req_id)
        self.queue.append((kind, req_id, body))
        return True
