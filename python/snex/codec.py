"""Encoding Python values for Elixir, and decoding what Elixir sends (pickle protocol 5)."""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from typing import Any

from . import _wire
from .errors import describe_exception, exception_text
from .types import Atom, EncodeError, Term

_custom_encoder: Callable[[Any], Any] | None = None

# Built-in types the pickler writes itself; subclasses travel as these (base first match).
_BASES: tuple[type, ...] = (
    bool,
    int,
    float,
    str,
    bytes,
    bytearray,
    list,
    tuple,
    dict,
    set,
    frozenset,
)

_MAX_CUSTOM_DEPTH = 32


def set_custom_encoder(fun: Callable[[Any], Any] | None) -> None:
    """Sets the function that turns otherwise unsupported objects into encodable ones.

    Its result is encoded again (and may itself go through the function again).
    """
    global _custom_encoder
    _custom_encoder = fun


def decode(body: bytes | bytearray | memoryview) -> Any:
    """Decodes a body written by Elixir."""
    return pickle.loads(body)  # noqa: S301 - Elixir, our own process, wrote it


_MARKERS = (_wire.atom, _wire.term, _wire.value)


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, Atom):
            return (_wire.atom, (str.__str__(obj),))
        if isinstance(obj, Term):
            return (_wire.term, (obj.etf,))
        if isinstance(obj, memoryview):
            return (_wire.value, (obj.tobytes(),))
        if any(obj is marker for marker in _MARKERS):
            return NotImplemented  # pickled as a global: snex._wire <name>
        for base in _BASES:
            if isinstance(obj, base):
                plain: Any = base(obj)
                return (_wire.value, (plain,))
        return (_wire.value, (_custom(obj),))


def _custom(obj: Any) -> Any:
    encoder = _custom_encoder
    depth = 0
    while encoder is not None and depth < _MAX_CUSTOM_DEPTH:
        obj = encoder(obj)
        if _encodable_directly(obj):
            return obj
        depth += 1
    if encoder is not None and depth >= _MAX_CUSTOM_DEPTH:
        raise EncodeError(
            f"Cannot serialize object of {_type_name(obj)}: the custom encoder did not "
            f"produce an encodable value after {_MAX_CUSTOM_DEPTH} rounds"
        )
    raise EncodeError(f"Cannot serialize object of {_type_name(obj)}")


def _encodable_directly(obj: Any) -> bool:
    return obj is None or isinstance(obj, (Atom, Term, memoryview, *_BASES))


def _type_name(obj: Any) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}" if t.__module__ != "builtins" else t.__qualname__


def encode(value: Any) -> bytes:
    """Encodes `value` for Elixir; raises `EncodeError` for what cannot be encoded, also when
    the value's own code (a custom encoder, the ``__iter__`` of a list subclass) raises: then
    the original exception is its ``__cause__``."""
    buf = io.BytesIO()
    try:
        _Pickler(buf, protocol=5).dump(value)
    except EncodeError:
        raise
    except RecursionError as e:
        raise EncodeError("Cannot serialize a structure that deep or recursive") from e
    except (pickle.PicklingError, TypeError, ValueError) as e:
        raise EncodeError(f"Cannot serialize value: {exception_text(e)}") from e
    except Exception as e:  # the value's own code raised: still an encode error
        raise EncodeError(f"Cannot serialize value: {describe_exception(e)}") from e
    return buf.getvalue()
