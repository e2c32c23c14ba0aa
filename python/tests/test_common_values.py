"""Common values (numbers, dates, decimals) for Elixir, and where encode errors point."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import fractions
import numbers
import zoneinfo
from typing import Any

import pytest
from support import roundtrip

import snex
from snex import _wire, codec, common_values, encode_errors


def struct(name: str, **fields: Any) -> dict[snex.Atom, Any]:
    plain = {
        "__struct__": snex.Atom(f"Elixir.{name}"),
        "calendar": snex.Atom("Elixir.Calendar.ISO"),
    }
    return {snex.Atom(k): v for k, v in {**plain, **fields}.items()}


def test_a_later_numbers_registration_is_seen() -> None:
    class Late:
        def __int__(self) -> int:
            return 5

    with pytest.raises(snex.EncodeError, match=r"Cannot serialize object of .*Late at value"):
        codec.encode(Late())
    numbers.Integral.register(Late)
    assert roundtrip([Late()]) == [5]


def test_numpy_bool_is_recognised_by_name() -> None:
    fake_bool = type("bool_", (), {"__module__": "numpy", "__bool__": lambda self: True})
    fake_bool2 = type("bool", (), {"__module__": "numpy", "__bool__": lambda self: False})
    assert roundtrip([fake_bool(), fake_bool2()]) == [True, False]
    assert type(roundtrip(fake_bool())) is bool


def test_exact_float() -> None:
    assert common_values.exact_float(fractions.Fraction(3, 4)) == 0.75
    assert common_values.exact_float(fractions.Fraction(-1, 2**60)) == -(2.0**-60)
    with pytest.raises(snex.EncodeError, match=r"Fraction\(1, 10\) is not exactly a float"):
        common_values.exact_float(fractions.Fraction(1, 10))


def test_decimal_is_its_string() -> None:
    assert roundtrip(decimal.Decimal("-1.500")) == "-1.500"
    assert roundtrip(decimal.Decimal("sNaN")) == "sNaN"


def test_dates_and_times() -> None:
    assert roundtrip(dt.date(2024, 1, 2)) == struct("Date", year=2024, month=1, day=2)
    assert roundtrip(dt.time(1, 2, 3)) == struct(
        "Time", hour=1, minute=2, second=3, microsecond=(0, 0)
    )
    assert roundtrip(dt.datetime(2024, 1, 2, 3, 4, 5, 6)) == struct(
        "NaiveDateTime",
        year=2024,
        month=1,
        day=2,
        hour=3,
        minute=4,
        second=5,
        microsecond=(6, 6),
    )


def utc_struct(**fields: Any) -> dict[snex.Atom, Any]:
    return struct(
        "DateTime", **fields, time_zone="Etc/UTC", zone_abbr="UTC", utc_offset=0, std_offset=0
    )


def test_aware_datetimes_at_fixed_offsets_become_utc() -> None:
    minus = dt.timezone(-dt.timedelta(hours=5, microseconds=1))
    value = dt.datetime(2024, 12, 31, 20, 0, 0, 0, tzinfo=minus)
    assert roundtrip(value) == utc_struct(
        year=2025, month=1, day=1, hour=1, minute=0, second=0, microsecond=(1, 6)
    )


def test_zoneinfo_keeps_its_zone_and_the_ambiguous_hour() -> None:
    warsaw = zoneinfo.ZoneInfo("Europe/Warsaw")
    first = dt.datetime(2024, 10, 27, 2, 30, tzinfo=warsaw)
    second = first.replace(fold=1)
    fields = {"year": 2024, "month": 10, "day": 27, "hour": 2, "minute": 30, "second": 0}
    common = {**fields, "microsecond": (0, 0), "time_zone": "Europe/Warsaw", "utc_offset": 3600}
    assert roundtrip([first, second]) == [
        struct("DateTime", **common, zone_abbr="CEST", std_offset=3600),
        struct("DateTime", **common, zone_abbr="CET", std_offset=0),
    ]
    assert roundtrip(dt.datetime(2024, 1, 1, tzinfo=zoneinfo.ZoneInfo("UTC"))) == utc_struct(
        year=2024, month=1, day=1, hour=0, minute=0, second=0, microsecond=(0, 0)
    )


def test_wire_aware_datetime() -> None:
    args = (2024, 10, 27, 2, 30, 0, 0)
    utc = _wire.aware_datetime(*args, "Etc/UTC", "UTC", 0, 0)
    assert utc.tzinfo is dt.timezone.utc
    first = _wire.aware_datetime(*args, "Europe/Warsaw", "CEST", 3600, 3600)
    second = _wire.aware_datetime(*args, "Europe/Warsaw", "CET", 3600, 0)
    assert (first.tzinfo, first.fold, second.fold) == (zoneinfo.ZoneInfo("Europe/Warsaw"), 0, 1)
    # The zone disagrees with the offsets (another tz database version): a fixed offset.
    odd = _wire.aware_datetime(*args, "Europe/Warsaw", "XST", 3 * 3600, 0)
    assert odd.tzinfo == dt.timezone(dt.timedelta(hours=3))
    assert odd.tzname() == "XST"
    unknown = _wire.aware_datetime(*args, "No/Such_Zone", "NST", -3600, 0)
    assert unknown.utcoffset() == dt.timedelta(hours=-1)


def test_the_path_in_errors() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    loop.append({"k": object()})
    with pytest.raises(snex.EncodeError) as info:
        codec.encode(loop, root="result")
    assert str(info.value) == "Cannot serialize object of object at result[2]['k']"

    def refuse(obj: Any) -> Any:
        raise snex.EncodeError("no")

    bad = object()
    found = encode_errors.locate((snex.Atom("to"), [1, bad]), ("to", "data"), refuse)
    assert found is not None
    assert found[:2] == ("data[1]", bad)
    assert encode_errors.locate([1, {2: (3,)}], "x", refuse) is None
    # A substitute that never gives an encodable value: the walk still ends.
    assert encode_errors.locate([bad], "x", lambda o: o) is None


def test_the_cause_of_an_error_of_the_value_s_own_code_is_kept() -> None:
    class Bad(list[int]):
        def __iter__(self) -> Any:
            raise RuntimeError("no iter")

    with pytest.raises(snex.EncodeError) as info:
        codec.encode({"a": Bad([1])}, root="result")
    assert str(info.value) == "Cannot serialize value at result['a']: RuntimeError: no iter"
    assert isinstance(info.value.__cause__, RuntimeError)


def test_hints() -> None:
    async def coro() -> None:
        pass

    def gen() -> Any:
        yield 1

    c = coro()
    fake_array = type("ndarray", (), {"__module__": "numpy"})
    assert encode_errors.hint(c) == "did you forget `await`?"
    c.close()
    assert encode_errors.hint(asyncio.Future) is None
    assert "list(...)" in (encode_errors.hint(gen()) or "")
    assert ".tolist()" in (encode_errors.hint(fake_array()) or "")
    assert "complex" in (encode_errors.hint(1j) or "")
    assert encode_errors.hint(object()) is None
