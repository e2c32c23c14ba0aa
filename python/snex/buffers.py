"""Out-of-band buffers (see docs/protocol.md): large binaries travel after a frame's pickle,
each read from the pipe straight into the object it becomes, and large buffer-like values
Python sends are written from their own memory.

A buffer table entry is ``kind: u8, len: u64 BE``; the kinds say what the buffer becomes in
Python: `BYTEARRAY`, `BYTES` or `STR` (UTF-8). Python sends only `BYTES`.
"""

from __future__ import annotations

import functools
import struct
import sys
from collections.abc import Callable
from typing import Any

BYTEARRAY = 0
BYTES = 1
STR = 2

#: Set in a frame's kind when its body carries out-of-band buffers.
OUT_OF_BAND = 0x40
#: The most buffers one frame may carry.
MAX_BUFFERS = 1 << 16
#: Buffers of fewer bytes are sent in the pickle, as the pickler writes them.
MIN_SIZE = 64 * 1024

COUNT = struct.Struct(">I")
ENTRY = struct.Struct(">BQ")


def is_large_binary(value: Any) -> bool:
    """Whether `value` is a large binary, sent out of band as it is: ``bytes`` or a
    ``bytearray`` (not a subclass) of at least `MIN_SIZE` bytes."""
    return type(value) in (bytes, bytearray) and len(value) >= MIN_SIZE


class Target:
    """What one buffer is read into: `view` is filled from the pipe, then `value()` is the
    object the pickle gets."""

    __slots__ = ("kind", "obj", "view")

    def __init__(self, kind: int, size: int) -> None:
        """Room for a buffer of `size` bytes that becomes a `kind` object."""
        self.kind = kind
        if kind == BYTES:
            self.obj, self.view = _new_bytes(size)
        else:
            self.obj = bytearray(size)
            self.view = memoryview(self.obj)

    def value(self) -> Any:
        """The object, once `view` is filled (a `str` is decoded from the bytes here)."""
        self.view.release()
        if self.kind == STR:
            return str(self.obj, "utf-8")
        if type(self.obj) is _CopiedBytes:
            return bytes(self.obj)
        return self.obj


def _new_bytes(size: int) -> tuple[Any, memoryview]:
    """A new `bytes` object of `size` bytes and a writable view of its storage, so that the
    reader fills it without a copy (CPython: ``PyBytes_FromStringAndSize(NULL, size)``, not
    zeroed, and ``PyMemoryView_FromMemory`` over its bytes, before anybody else sees the
    object; a frame that does not arrive whole is dropped with it). Elsewhere, or for tiny
    sizes (CPython shares those objects), a `bytearray` copied into `bytes` by `Target.value`."""
    make = _bytes_maker()
    if make is None or size < 2:
        buf = _CopiedBytes(size)
        return buf, memoryview(buf)
    return make(size)


class _CopiedBytes(bytearray):
    """A bytearray to be turned into `bytes` (see `_new_bytes`)."""


#: Makes a `bytes` object and a writable view of its storage.
BytesMaker = Callable[[int], tuple[bytes, memoryview]]


@functools.cache
def _bytes_maker() -> BytesMaker | None:
    """This process's maker, looked for once; None where there is none."""
    if sys.implementation.name != "cpython":
        return None
    try:
        import ctypes

        return _ctypes_maker(ctypes)
    except Exception:  # noqa: BLE001 - no ctypes, or not the C API we expect: copy instead
        return None


def _ctypes_maker(ctypes: Any) -> BytesMaker | None:
    api = ctypes.pythonapi
    new = api.PyBytes_FromStringAndSize
    new.restype = ctypes.py_object
    new.argtypes = (ctypes.c_char_p, ctypes.c_ssize_t)
    from_memory = api.PyMemoryView_FromMemory
    from_memory.restype = ctypes.py_object
    from_memory.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)
    pybuf_write = 0x200
    offset = bytes.__basicsize__ - 1  # where ``ob_sval`` starts

    def new_bytes(size: int) -> tuple[bytes, memoryview]:
        # Not zeroed first: the read fills every byte before anyone sees the object.
        obj: bytes = new(None, size)
        view: memoryview = from_memory(id(obj) + offset, size, pybuf_write)
        return obj, view

    # The layout is CPython's, not a promise: check it once, and copy if it does not hold.
    probe, view = new_bytes(16)
    view[:] = b"snex-bytes-probe"
    view.release()
    return new_bytes if probe == b"snex-bytes-probe" else None
