"""Common Python values that are not built-in pickle types, as the values Elixir expects.

- anything registered with ``numbers.Integral`` (numpy's integer scalars among them) → ``int``;
- anything registered with ``numbers.Real`` (numpy's float scalars, ``fractions.Fraction``) →
  ``float``, only when that is exact (else an `EncodeError`: data is never silently changed);
- numpy's bool (``numpy.bool_``/``numpy.bool``) → ``bool``, recognised by its type's module and
  name, so numpy is never imported;
- ``decimal.Decimal`` → its ``str()``, exact (``Decimal.new/1`` of Elixir's ``decimal``
  package reads it);
- ``datetime.date``/``time``/``datetime`` → a dict with the key ``Atom("__struct__")``, which
  Elixir receives as a ``Date``, ``Time``, ``NaiveDateTime`` or ``DateTime`` struct (see
  `datetime_struct` for the time zone rule).

The modules of these types (``datetime``, ``decimal``, ``numbers``) are not imported here: a
value of one of them exists only once its module has been imported, so the encoder looks for
them in ``sys.modules`` and start-up does not pay for them (see "Start-up" in
docs/decisions.md).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .encode_errors import Unencodable, type_name
from .types import Atom

if TYPE_CHECKING:
    import datetime as dt

Converter = Callable[[Any], Any]

# The types found to have a converter (a registration with the `numbers` ABCs cannot be undone,
# so an entry stays true); types without one are looked at again each time, so that a later
# registration counts. The encoder looks here first.
KNOWN: dict[type, Converter] = {}
_KNOWN_LIMIT = 1024


def converter_for(cls: type) -> Converter | None:
    """The function that turns instances of `cls` into a value the pickler writes itself (a
    built-in type, or a dict of atoms for the calendar types), or ``None`` if `cls` is not one
    of the common types. Not for built-in types and their subclasses, which are encoded as
    such."""
    found = KNOWN.get(cls)
    if found is None:
        found = _find(cls)
        if found is not None:
            if len(KNOWN) >= _KNOWN_LIMIT:
                KNOWN.clear()
            KNOWN[cls] = found
    return found


def _find(cls: type) -> Converter | None:
    modules = sys.modules
    # Whatever makes these values imports `datetime` (its C API too), or `_datetime` alone.
    calendar = modules.get("datetime") or modules.get("_datetime")
    if calendar is not None:
        if issubclass(cls, calendar.datetime):
            return datetime_struct
        if issubclass(cls, calendar.date):
            return date_struct
        if issubclass(cls, calendar.time):
            return time_struct
    # `decimal` re-exports `_decimal`, which may be imported alone.
    decimal = modules.get("decimal") or modules.get("_decimal")
    if decimal is not None and issubclass(cls, decimal.Decimal):
        return str
    if cls.__module__ == "numpy" and cls.__name__ in ("bool", "bool_"):
        return bool
    # A type is registered with the `numbers` ABCs (or derives from them) through the module.
    numbers = modules.get("numbers")
    if numbers is not None:
        if issubclass(cls, numbers.Integral):
            return int
        if issubclass(cls, numbers.Real):
            return exact_float
    return None


def exact_float(x: Any) -> float:
    """``float(x)``, if that is exactly `x` (or both are NaN); else an `EncodeError`."""
    f = float(x)
    if f == x or (f != f and x != x):
        return f
    shown = repr(x)
    if len(shown) > _MAX_REPR:
        shown = shown[: _MAX_REPR - 3] + "..."
    raise Unencodable(
        f"object of {type_name(x)}",
        f"{shown} is not exactly a float; convert it yourself (float(x), or str(x) for an "
        "exact text)",
    )


_MAX_REPR = 60

# The keys and values of the structs, built once: the pickler then writes each only once.
_STRUCT = Atom("__struct__")
_CALENDAR = Atom("calendar")
_ISO = Atom("Elixir.Calendar.ISO")
_DATE = Atom("Elixir.Date")
_TIME = Atom("Elixir.Time")
_NAIVE = Atom("Elixir.NaiveDateTime")
_DATETIME = Atom("Elixir.DateTime")
_YEAR, _MONTH, _DAY = Atom("year"), Atom("month"), Atom("day")
_HOUR, _MINUTE, _SECOND = Atom("hour"), Atom("minute"), Atom("second")
_MICROSECOND = Atom("microsecond")
_TIME_ZONE, _ZONE_ABBR = Atom("time_zone"), Atom("zone_abbr")
_UTC_OFFSET, _STD_OFFSET = Atom("utc_offset"), Atom("std_offset")
_ETC_UTC = "Etc/UTC"
# Names of UTC in the time zone database: these become Elixir's "Etc/UTC".
_UTC_KEYS = frozenset(
    {"UTC", "Etc/UTC", "UCT", "Etc/UCT", "Universal", "Etc/Universal", "Zulu", "Etc/Zulu"}
)


def date_struct(d: dt.date) -> dict[Atom, Any]:
    """A ``Date``."""
    return {_STRUCT: _DATE, _CALENDAR: _ISO, _YEAR: d.year, _MONTH: d.month, _DAY: d.day}


def _microsecond(us: int) -> tuple[int, int]:
    # Python keeps microseconds; the precision is what `isoformat()` shows: none when 0.
    return (us, 6) if us else (0, 0)


def time_struct(t: dt.time) -> dict[Atom, Any]:
    """A ``Time``; an aware time (one with a UTC offset) has no Elixir counterpart."""
    if t.utcoffset() is not None:
        raise Unencodable(
            f"an aware datetime.time ({t.isoformat()})",
            "Elixir's Time has no time zone; drop it with .replace(tzinfo=None), or send a "
            "datetime",
        )
    return {
        _STRUCT: _TIME,
        _CALENDAR: _ISO,
        _HOUR: t.hour,
        _MINUTE: t.minute,
        _SECOND: t.second,
        _MICROSECOND: _microsecond(t.microsecond),
    }


def datetime_struct(d: dt.datetime) -> dict[Atom, Any]:
    """A ``NaiveDateTime`` for a naive datetime, a ``DateTime`` for an aware one.

    Time zone rule: a ``zoneinfo.ZoneInfo`` zone (anything with a string ``key``) is kept
    (``time_zone`` is its key, ``zone_abbr`` its ``tzname()``, ``std_offset`` its ``dst()``,
    ``utc_offset`` the rest), except the names of UTC, which become ``"Etc/UTC"``; any other
    time zone (``datetime.timezone``, other libraries) is converted to UTC (``"Etc/UTC"``),
    like Elixir's ``DateTime.from_iso8601/1`` does. The instant is kept in every case.
    """
    import datetime as dt  # imported already: `d` is one of its values

    second = dt.timedelta(seconds=1)
    offset = d.utcoffset()
    fields: dict[Atom, Any] = {
        _STRUCT: _NAIVE if offset is None else _DATETIME,
        _CALENDAR: _ISO,
        _YEAR: d.year,
        _MONTH: d.month,
        _DAY: d.day,
        _HOUR: d.hour,
        _MINUTE: d.minute,
        _SECOND: d.second,
        _MICROSECOND: _microsecond(d.microsecond),
    }
    if offset is None:
        return fields
    key = getattr(d.tzinfo, "key", None)
    dst = d.dst() or dt.timedelta(0)
    if type(key) is str and key not in _UTC_KEYS and not offset % second and not dst % second:
        abbr = d.tzname()
        fields[_TIME_ZONE] = key
        fields[_ZONE_ABBR] = abbr if type(abbr) is str else key
        fields[_UTC_OFFSET] = (offset - dst) // second
        fields[_STD_OFFSET] = dst // second
        return fields
    if offset:
        utc = d.replace(tzinfo=None) - offset
        fields.update(
            {
                _YEAR: utc.year,
                _MONTH: utc.month,
                _DAY: utc.day,
                _HOUR: utc.hour,
                _MINUTE: utc.minute,
                _SECOND: utc.second,
                _MICROSECOND: _microsecond(utc.microsecond),
            }
        )
    fields[_TIME_ZONE] = _ETC_UTC
    fields[_ZONE_ABBR] = "UTC"
    fields[_UTC_OFFSET] = 0
    fields[_STD_OFFSET] = 0
    return fields
