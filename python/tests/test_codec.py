"""The Python → Elixir encoder: what it writes must load back as the expected values."""

from __future__ import annotations

import collections
import enum
import io
import math
import random
from typing import Any

import pytest
from support import roundtrip

import snex
from snex import codec


class Color(enum.IntEnum):
    RED = 1


Point = collections.namedtuple("Point", "x y")


def test_builtin_types_round_trip() -> None:
    values = [
        None,
        True,
        False,
        0,
        -1,
        2**100,
        1.5,
        -0.0,
        "text",
        b"raw",
        bytearray(b"ba"),
        [1, [2]],
        (1, "a"),
        {"k": {"n": None}},
        {1, 2},
        frozenset({3}),
    ]
    for v in values:
        assert roundtrip(v) == v


@pytest.mark.parametrize(
    "value", [None, True, 0, -7, 2**70, 1.5, float("nan"), "", "é\ud800", b"", b"raw" * 100]
)
def test_plain_values_are_encoded_as_the_full_pickler_does(value: Any) -> None:
    # They skip the pickler's hooks: the bytes must be those the hooks would have let through.
    full = io.BytesIO()
    codec._Pickler(full, protocol=5, buffer_callback=lambda b: True).dump(value)
    assert codec.encode(value) == full.getvalue()
    assert codec.encode(value, out_of_band=[]) == full.getvalue()


def test_atoms_terms_and_subclasses_travel_as_markers() -> None:
    assert roundtrip(snex.Atom("ok")) == "ok"
    assert type(roundtrip(snex.Atom("ok"))) is snex.Atom
    assert roundtrip(snex.Term(b"\x83a\x01")) == snex.Term(b"\x83a\x01")
    assert type(roundtrip(Color.RED)) is int
    assert type(roundtrip(Point(1, 2))) is tuple
    assert type(roundtrip(collections.OrderedDict(a=1))) is dict


def test_memoryview_is_bytes() -> None:
    import array

    assert roundtrip(memoryview(b"abc")) == b"abc"
    arr = array.array("i", [1, 2])
    assert roundtrip(memoryview(arr)) == arr.tobytes()


def test_special_floats() -> None:
    assert math.isnan(roundtrip(float("nan")))
    assert roundtrip(float("inf")) == float("inf")


def test_unsupported_type_is_a_clear_error() -> None:
    class Thing:
        pass

    with pytest.raises(snex.EncodeError, match=r"Cannot serialize object of .*Thing"):
        codec.encode([Thing()])


def test_custom_encoder() -> None:
    class Money:
        def __init__(self, cents: int) -> None:
            self.cents = cents

    codec.set_custom_encoder(lambda o: {"cents": o.cents} if isinstance(o, Money) else o)
    try:
        assert roundtrip([Money(5)]) == [{"cents": 5}]
        with pytest.raises(snex.EncodeError):
            codec.encode(object())
    finally:
        codec.set_custom_encoder(None)


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["none", "bool", "int", "big", "float", "str", "bytes", "atom"]
    if depth < 4:
        kinds += ["list", "tuple", "dict", "set"]
    kind = rng.choice(kinds)
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.randint(-(2**40), 2**40)
    if kind == "big":
        return rng.randint(-(2**300), 2**300)
    if kind == "float":
        return rng.choice([rng.uniform(-1e9, 1e9), float("inf"), -0.0])
    if kind == "str":
        return "".join(chr(rng.randint(32, 0x1F600)) for _ in range(rng.randint(0, 12)))
    if kind == "bytes":
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 12)))
    if kind == "atom":
        return snex.Atom(f"a{rng.randint(0, 50)}")
    n = rng.randint(0, 5)
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(n)]
    if kind == "tuple":
        return tuple(random_value(rng, depth + 1) for _ in range(n))
    if kind == "set":
        return {rng.randint(0, 100) for _ in range(n)}
    return {f"k{i}": random_value(rng, depth + 1) for i in range(n)}


def test_random_nested_values_round_trip() -> None:
    rng = random.Random(1234)
    for _ in range(1000):
        v = random_value(rng)
        assert roundtrip(v) == v
