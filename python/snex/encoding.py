"""``snex.EncodingOpt`` and ``snex.EncodingOpts``: how Elixir encodes a value for Python.

They name the encoding options of ``Snex.Serde`` on the Python side, for the
``result_encoding_opts`` of ``snex.call`` and of ``Elixir.*`` calls::

    await snex.call("Elixir.File", "read!", [path],
                    result_encoding_opts=EncodingOpts(binary_as=EncodingOpt.BinaryAs.BYTES))

A plain dict of strings (``{"binary_as": "bytes"}``) works too.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Mapping
from typing import Any, TypedDict

from .types import Atom

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - exercised on Python 3.10 only

    class StrEnum(str, enum.Enum):
        """Python 3.11's ``enum.StrEnum`` on 3.10: members are strings."""

        def __str__(self) -> str:
            return str.__str__(self)

        def __format__(self, spec: str) -> str:
            return str.__format__(self, spec)


class _AtomEnum(StrEnum):
    """A `StrEnum` whose values are `snex.Atom`s (the members themselves are `str`s)."""

    def __new__(cls, value: str) -> _AtomEnum:
        member = str.__new__(cls, value)
        member._value_ = Atom(value)
        return member


class EncodingOpt:
    """The values of each encoding option."""

    class BinaryAs(_AtomEnum):
        """``binary_as``: the Python type of Elixir binaries."""

        STR = "str"
        BYTES = "bytes"
        BYTEARRAY = "bytearray"

    class SetAs(_AtomEnum):
        """``set_as``: the Python type of ``MapSet``s."""

        SET = "set"
        FROZENSET = "frozenset"

    class AtomAs(_AtomEnum):
        """``atom_as``: the Python type of atoms."""

        ATOM = "atom"
        DISTINCT_ATOM = "distinct_atom"


class EncodingOpts(TypedDict, total=False):
    """Encoding options; each one left out keeps the interpreter's setting."""

    binary_as: EncodingOpt.BinaryAs
    set_as: EncodingOpt.SetAs
    atom_as: EncodingOpt.AtomAs


_OPTIONS: dict[str, type[_AtomEnum]] = {
    "binary_as": EncodingOpt.BinaryAs,
    "set_as": EncodingOpt.SetAs,
    "atom_as": EncodingOpt.AtomAs,
}


def to_wire(opts: EncodingOpts | Mapping[str, Any] | None) -> dict[Atom, Atom] | None:
    """`opts` as Elixir reads them (atoms to atoms); raises `ValueError` for an unknown option
    or value, `TypeError` for something that is not a mapping."""
    if opts is None:
        return None
    if not isinstance(opts, Mapping):
        raise TypeError(f"encoding options must be a mapping, got {type(opts).__qualname__}")
    wire: dict[Atom, Atom] = {}
    for key, value in opts.items():
        kind = _OPTIONS.get(str(key))
        if kind is None:
            raise ValueError(f"unknown encoding option {key!r}; expected one of {list(_OPTIONS)}")
        try:
            wire[Atom(str(key))] = kind(str(value)).value
        except ValueError:
            allowed = [str(v) for v in kind]
            raise ValueError(
                f"invalid value {value!r} for encoding option {key!r}; expected one of {allowed}"
            ) from None
    return wire
