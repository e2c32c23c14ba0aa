"""Encoding Python values for Elixir, and decoding what Elixir sends (pickle protocol 5)."""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Sequence
from typing import Any

from . import _wire, buffers, common_values, encode_errors
from .encode_errors import Unencodable, type_name
from .errors import describe_exception, exception_text
from .types import Atom, EncodeError, Term

_custom_encoder: Callable[[Any], Any] | None = None

# Built-in types the pickler writes itself; subclasses travel as these (base first match).
_BASES = encode_errors.SCALARS + encode_errors.CONTAINERS
# What the pickler writes without the custom encoder: the built-in types and Snex's.
_DIRECT = encode_errors.MARKED + _BASES

_MAX_CUSTOM_DEPTH = 32

#: Types whose exact instances the pickler writes the same without Snex's hooks: it calls
#: ``reducer_override`` for none of the scalars, and of them only ``bytearray`` reaches the
#: ``buffer_callback``. Such a value is encoded by ``pickle.dumps`` alone (about 0.2 µs here
#: against 1.2 µs through `_Pickler`).
_PLAIN = frozenset((type(None), *encode_errors.SCALARS)) - {bytearray}


def set_custom_encoder(fun: Callable[[Any], Any] | None) -> None:
    """Sets the function that turns otherwise unsupported objects into encodable ones.

    Its result is encoded again (and may itself go through the function again).
    """
    global _custom_encoder
    _custom_encoder = fun


def decode(body: Any) -> Any:
    """Decodes a body written by Elixir: a pickle, or a `frames.OutOfBand` (a pickle and the
    objects its out-of-band buffers were read into)."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return pickle.loads(body)  # noqa: S301 - Elixir, our own process, wrote it
    return pickle.loads(body.pickle, buffers=body.values())  # noqa: S301 - the same


_MARKERS = (_wire.atom, _wire.term, _wire.value)
_KNOWN = common_values.KNOWN


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, Atom):
            return (_wire.atom, (str.__str__(obj),))
        if isinstance(obj, Term):
            return (_wire.term, (obj.etf,))
        if isinstance(obj, memoryview):
            if obj.c_contiguous:
                return (_wire.value, (pickle.PickleBuffer(obj),))
            return (_wire.value, (obj.tobytes(),))
        convert = _KNOWN.get(type(obj))
        if convert is not None:  # a common value of a type seen before
            return (_wire.value, (convert(obj),))
        if any(obj is marker for marker in _MARKERS):
            return NotImplemented  # pickled as a global: snex._wire <name>
        for base in _BASES:
            if isinstance(obj, base):
                plain: Any = base(obj)
                return (_wire.value, (plain,))
        return (_wire.value, (_substitute(obj),))


def _substitute(obj: Any) -> Any:
    """What is encoded instead of `obj`, which is neither a built-in nor a Snex type: a common
    value's conversion (`common_values`), else the custom encoder's result."""
    convert = common_values.converter_for(type(obj))
    if convert is not None:
        return convert(obj)
    if _custom_encoder is None:
        view = _buffer_of(obj)
        if view is not None:
            return view
    return _custom(obj)


def _is_numpy_scalar(cls: type) -> bool:
    """Whether `cls` is a numpy scalar type (they export their bytes as buffers too), told
    without importing numpy."""
    return any(c.__name__ == "generic" and c.__module__ == "numpy" for c in cls.__mro__)


#: Item formats (``struct`` codes) of buffers that become binaries: numbers, bools, bytes.
_PLAIN_FORMATS = frozenset("bBhHiIlLqQnNefd?c")


def _buffer_of(obj: Any) -> memoryview | None:
    """A view of `obj`'s bytes if it is an array of plain numbers through the buffer protocol
    (a numpy array, ``array.array``), else None: not for scalars (numpy's have converters or
    errors of their own), nor arrays of Python objects, strings, complex numbers or records."""
    if _is_numpy_scalar(type(obj)):
        return None
    try:
        view = memoryview(obj)
    except (TypeError, ValueError, BufferError):
        return None
    if view.ndim == 0 or view.format.lstrip("@=<>!") not in _PLAIN_FORMATS:
        view.release()
        return None
    return view


def _custom(obj: Any) -> Any:
    encoder = _custom_encoder
    depth = 0
    while encoder is not None and depth < _MAX_CUSTOM_DEPTH:
        obj = encoder(obj)
        if _encodable_directly(obj):
            return obj
        depth += 1
    if encoder is not None and depth >= _MAX_CUSTOM_DEPTH:
        raise Unencodable(
            f"object of {type_name(obj)}",
            f"the custom encoder did not produce an encodable value after "
            f"{_MAX_CUSTOM_DEPTH} rounds",
        )
    raise Unencodable(f"object of {type_name(obj)}")


def _encodable_directly(obj: Any) -> bool:
    return isinstance(obj, _DIRECT) or common_values.converter_for(type(obj)) is not None


#: The pickle of a value that is its one out-of-band buffer: ``PROTO 5, NEXT_BUFFER, STOP``.
_ONE_BUFFER = bytes((pickle.PROTO[0], 5, pickle.NEXT_BUFFER[0], pickle.STOP[0]))


def encode(
    value: Any,
    root: str | Sequence[str] = "value",
    out_of_band: list[memoryview] | None = None,
) -> bytes:
    """Encodes `value` for Elixir; raises `EncodeError` for what cannot be encoded, also when
    the value's own code (a custom encoder, the ``__iter__`` of a list subclass) raises: then
    the original exception is its ``__cause__``.

    The error names where the offending object is, as a path from `root` (the name of
    `value`; a sequence of names for the items of a tuple `value`, see
    `encode_errors.locate`), with a hint at the usual fix when there is one.

    With a list as `out_of_band`, large contiguous buffers (`value` itself when it is
    ``bytes`` or a ``bytearray``, and memoryviews, numpy arrays and other buffer-protocol
    objects anywhere in it) are not copied into the pickle: their bytes are appended to the
    list, to be sent after it (see docs/protocol.md).
    """
    kind = type(value)
    if kind in _PLAIN and (
        kind is not bytes or out_of_band is None or len(value) < buffers.MIN_SIZE
    ):
        try:
            return pickle.dumps(value, 5)
        except Exception:  # noqa: BLE001, S110 - e.g. MemoryError: the full path reports it
            pass
    callback = None
    if out_of_band is not None:
        if buffers.is_large_binary(value):
            out_of_band.append(memoryview(value))
            return _ONE_BUFFER
        callback = _collector(out_of_band)
    buf = io.BytesIO()
    try:
        _Pickler(buf, protocol=5, buffer_callback=callback).dump(value)
    except RecursionError as e:
        raise EncodeError("Cannot serialize a structure that deep or recursive") from e
    except EncodeError as e:
        raise _located(e, value, root) from e.__cause__
    except Exception as e:  # the value's own code raised: still an encode error
        raise _located(e, value, root) from e
    return buf.getvalue()


def _collector(out_of_band: list[memoryview]) -> Callable[[pickle.PickleBuffer], bool]:
    """The pickler's ``buffer_callback``: large buffers go to `out_of_band` (the callback
    returns False), small ones stay in the pickle."""

    def collect(buffer: pickle.PickleBuffer) -> bool:
        raw = buffer.raw()
        if raw.nbytes < buffers.MIN_SIZE or len(out_of_band) >= buffers.MAX_BUFFERS:
            return True
        out_of_band.append(raw)
        return False

    return collect


def _located(e: Exception, value: Any, root: str | Sequence[str]) -> EncodeError:
    """The encode error for `e`, raised while encoding `value`, naming where it happened."""
    if isinstance(e, EncodeError):
        text = exception_text(e)
    elif isinstance(e, (pickle.PicklingError, TypeError, ValueError)):
        text = f"Cannot serialize value: {exception_text(e)}"
    else:
        text = f"Cannot serialize value: {describe_exception(e)}"
    try:
        found = encode_errors.locate(value, root, _substitute)
    except Exception:  # noqa: BLE001 - the error without a path, then
        found = None
    if found is None:
        return EncodeError(text)
    path, obj, raised = found
    if isinstance(raised, Unencodable):
        text = f"Cannot serialize {raised.what} at {path}"
        advice = raised.advice or encode_errors.hint(obj)
    else:
        text = f"Cannot serialize value at {path}: {describe_exception(raised)}"
        advice = encode_errors.hint(obj)
    return EncodeError(f"{text}: {advice}" if advice else text)
