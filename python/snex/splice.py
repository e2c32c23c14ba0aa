"""Writing frames into the pipe to Elixir, large out-of-band buffers by reference.

On Linux, ``vmsplice`` hands the pages of a buffer to the pipe instead of copying them: the
NIF then reads them straight from this process's memory. That memory must stay alive and
unchanged until it has been read, which one rule guarantees without any hand-shake: after
the last spliced byte of a frame, at least the pipe's capacity is written by copy. A pipe of
capacity ``C`` holds ``C / PAGE_SIZE`` buffers and a copied page fills one, so the copied
tail fits only once every spliced page before it has been read: when `write_all` returns,
nothing of the buffers is left in the pipe. Elsewhere, or if the pipe refuses a splice,
everything is copied with ``writev``.
"""

from __future__ import annotations

import fcntl
import functools
import os
import select
import sys
from collections.abc import Callable, Sequence

#: Spliced ranges shorter than this are copied: a splice pays off only for many pages.
MIN_SPLICE = 64 * 1024
#: At most this many slices per ``writev`` or ``vmsplice`` (the system's limit is at least 1024).
IOV_MAX = 512

_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
_SPLICE_F_NONBLOCK = 0x02

#: Splices views into a pipe: ``(fd, views) -> bytes taken``; raises `OSError`.
Splicer = Callable[[int, Sequence[memoryview]], int]

#: Bytes spliced so far (for tests and benchmarks).
spliced_bytes = 0


def write_all(fd: int, parts: Sequence[bytes | memoryview], by_reference: int = 0) -> None:
    """Writes every byte of ``parts`` into ``fd``; the last ``by_reference`` parts (buffers
    that stay alive while this runs) may be spliced. Returns once all is in the pipe, and
    every spliced byte out of it."""
    if not by_reference and len(parts) == 1 and type(parts[0]) is bytes:
        # The usual frame: one small buffer, which the pipe takes at once.
        data = parts[0]
        try:
            written = os.write(fd, data)
        except (BlockingIOError, InterruptedError):
            written = 0
        if written == len(data):
            return
        parts = [memoryview(data)[written:]]
    views = [memoryview(p) for p in parts]
    splicer = _get_splicer() if by_reference else None
    if splicer is None:
        _copy(fd, views)
        return
    start = sum(v.nbytes for v in views[: len(views) - by_reference])
    capacity = _capacity(fd)
    cut = sum(v.nbytes for v in views) - capacity if capacity else 0
    if cut - start < MIN_SPLICE:
        _copy(fd, views)
        return
    head, rest = _split(views, start)
    middle, tail = _split(rest, cut - start)
    _copy(fd, head)
    copied = _splice(fd, middle, splicer)
    _copy(fd, copied + tail)


def _copy(fd: int, views: list[memoryview]) -> None:
    """Writes ``views`` with ``writev``, waiting while the pipe is full."""
    _write_loop(fd, views, os.writev)


def _splice(fd: int, views: list[memoryview], splicer: Splicer) -> list[memoryview]:
    """Splices ``views`` into ``fd``; returns what is left to copy if the pipe refuses."""
    global spliced_bytes
    try:
        spliced_bytes += _write_loop(fd, views, splicer)
    except _Refused as refused:
        return refused.rest
    return []


class _Refused(Exception):
    """The pipe refused a splice; `rest` are the views not written yet."""

    def __init__(self, rest: list[memoryview]) -> None:
        super().__init__()
        self.rest = rest


def _write_loop(
    fd: int, views: list[memoryview], write: Callable[[int, Sequence[memoryview]], int]
) -> int:
    """Writes all of ``views`` with ``write``; returns the number of bytes written."""
    done = 0
    while views:
        try:
            n = write(fd, views[:IOV_MAX])
        except (BlockingIOError, InterruptedError) as e:
            if isinstance(e, BlockingIOError):  # a full non-blocking pipe: wait for room
                select.select((), (fd,), ())
            continue
        except OSError:
            if write is os.writev:
                raise
            raise _Refused(views) from None
        if n == 0:
            if write is os.writev:
                raise OSError("the pipe took no bytes")
            raise _Refused(views)
        done += n
        while views and n >= views[0].nbytes:
            n -= views[0].nbytes
            views.pop(0)
        if views and n:
            views[0] = views[0][n:]
    return done


def _split(views: list[memoryview], at: int) -> tuple[list[memoryview], list[memoryview]]:
    """``views`` cut at byte ``at``."""
    head: list[memoryview] = []
    rest = list(views)
    while rest and at >= rest[0].nbytes:
        at -= rest[0].nbytes
        head.append(rest.pop(0))
    if rest and at:
        head.append(rest[0][:at])
        rest[0] = rest[0][at:]
    return head, rest


def _capacity(fd: int) -> int:
    """The capacity of the pipe ``fd`` in bytes; 0 if it is not a pipe."""
    try:
        return int(fcntl.fcntl(fd, _F_GETPIPE_SZ))
    except OSError:
        return 0


@functools.cache
def _get_splicer() -> Splicer | None:
    """This process's splicer, looked for once; None where there is none."""
    if not sys.platform.startswith("linux") or sys.implementation.name != "cpython":
        return None
    try:
        return _ctypes_splicer()
    except Exception:  # noqa: BLE001 - no ctypes, no vmsplice: copy instead
        return None


def _ctypes_splicer() -> Splicer:
    import ctypes

    class IoVec(ctypes.Structure):
        _fields_ = (("base", ctypes.c_void_p), ("len", ctypes.c_size_t))

    class PyBuffer(ctypes.Structure):
        # CPython's ``Py_buffer``; ``obj`` is left to PyBuffer_Release.
        _fields_ = (
            ("buf", ctypes.c_void_p),
            ("obj", ctypes.c_void_p),
            ("len", ctypes.c_ssize_t),
            ("itemsize", ctypes.c_ssize_t),
            ("readonly", ctypes.c_int),
            ("ndim", ctypes.c_int),
            ("format", ctypes.c_char_p),
            ("shape", ctypes.c_void_p),
            ("strides", ctypes.c_void_p),
            ("suboffsets", ctypes.c_void_p),
            ("internal", ctypes.c_void_p),
        )

    libc = ctypes.CDLL(None, use_errno=True)
    vmsplice = libc.vmsplice
    vmsplice.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint)
    vmsplice.restype = ctypes.c_ssize_t
    get_buffer = ctypes.pythonapi.PyObject_GetBuffer
    get_buffer.argtypes = (ctypes.py_object, ctypes.c_void_p, ctypes.c_int)
    get_buffer.restype = ctypes.c_int  # -1 sets an exception, which ctypes raises
    release = ctypes.pythonapi.PyBuffer_Release
    release.argtypes = (ctypes.c_void_p,)
    release.restype = None
    pybuf_simple = 0

    def splice(fd: int, views: Sequence[memoryview]) -> int:
        held = [PyBuffer() for _ in views]
        iov = (IoVec * len(views))()
        taken = 0
        try:
            for i, view in enumerate(views):
                try:
                    get_buffer(view, ctypes.byref(held[i]), pybuf_simple)
                except Exception as e:  # noqa: BLE001 - not a simple buffer: copy it
                    raise OSError(f"cannot splice: {e}") from None
                taken = i + 1
                iov[i].base = held[i].buf
                iov[i].len = held[i].len
            n = vmsplice(fd, ctypes.byref(iov), len(views), _SPLICE_F_NONBLOCK)
            if n < 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
            return int(n)
        finally:
            for buf in held[:taken]:
                release(ctypes.byref(buf))

    return splice
