"""``snex.EncodingOpt`` / ``snex.EncodingOpts`` and their wire form."""

from __future__ import annotations

import enum

import pytest

import snex
from snex.encoding import to_wire

E = snex.EncodingOpt


def test_members_are_str_enums_with_atom_values() -> None:
    for kind in (E.BinaryAs, E.SetAs, E.AtomAs):
        for member in kind:
            assert isinstance(member, str)
            assert isinstance(member, enum.Enum)
            assert type(member.value) is snex.Atom
            assert member == member.value == member.name.lower()
    if hasattr(enum, "StrEnum"):
        assert issubclass(E.BinaryAs, enum.StrEnum)
    assert [m.name for m in E.BinaryAs] == ["STR", "BYTES", "BYTEARRAY"]
    assert [m.name for m in E.SetAs] == ["SET", "FROZENSET"]
    assert [m.name for m in E.AtomAs] == ["ATOM", "DISTINCT_ATOM"]
    assert f"{E.BinaryAs.BYTES}" == str(E.BinaryAs.BYTES) == "bytes"


def test_encoding_opts_is_a_typed_dict_of_optional_keys() -> None:
    assert snex.EncodingOpts.__optional_keys__ == {"binary_as", "set_as", "atom_as"}
    assert snex.EncodingOpts.__required_keys__ == frozenset()
    assert snex.EncodingOpts(set_as=E.SetAs.FROZENSET) == {"set_as": "frozenset"}


def test_to_wire_gives_atoms_for_enums_and_plain_strings() -> None:
    wire = to_wire(snex.EncodingOpts(binary_as=E.BinaryAs.BYTES, atom_as=E.AtomAs.ATOM))
    assert wire == {"binary_as": "bytes", "atom_as": "atom"}
    assert wire is not None
    assert all(type(k) is snex.Atom and type(v) is snex.Atom for k, v in wire.items())
    assert to_wire({"set_as": "frozenset"}) == {snex.Atom("set_as"): snex.Atom("frozenset")}
    assert to_wire({snex.Atom("binary_as"): snex.Atom("bytearray")}) == {"binary_as": "bytearray"}
    assert to_wire(None) is None
    assert to_wire({}) == {}


@pytest.mark.parametrize(
    ("opts", "error"),
    [
        ({"binary": "bytes"}, "unknown encoding option"),
        ({"binary_as": "text"}, "invalid value 'text'"),
        ({"set_as": E.BinaryAs.BYTES}, "invalid value"),
    ],
)
def test_to_wire_refuses_unknown_options_and_values(opts: dict[str, str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        to_wire(opts)


def test_to_wire_refuses_what_is_not_a_mapping() -> None:
    with pytest.raises(TypeError):
        to_wire([("binary_as", "bytes")])  # type: ignore[arg-type]
