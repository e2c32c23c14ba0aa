"""Markers that appear as pickle globals on the wire (see docs/protocol.md).

Rust recognises ``atom``, ``term`` and ``value`` by name in what Python sends; Python calls
``make_object`` (``Snex.Serde.object/3``) and ``aware_datetime`` (a ``DateTime``) when
unpickling what Elixir sends.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .types import Atom, Term

if TYPE_CHECKING:
    import datetime as dt


def atom(name: str) -> Atom:
    """The atom `name`."""
    return Atom(name)


def term(etf: bytes) -> Term:
    """An opaque term."""
    return Term(etf)


def value(x: Any) -> Any:
    """The value itself (a subclass of a built-in type travels as its base type)."""
    return x


def make_object(module: str, name: str, args: Any) -> Any:
    """``module.name(*args)``; `name` may be dotted."""
    obj: Any = importlib.import_module(str(module))
    for part in str(name).split("."):
        obj = getattr(obj, part)
    return obj(*args)


def aware_datetime(
    year: int,
    month: int,
    day: int,
    hour: int,
    minute: int,
    second: int,
    microsecond: int,
    time_zone: str,
    zone_abbr: str,
    utc_offset: int,
    std_offset: int,
) -> dt.datetime:
    """An Elixir ``DateTime``: at ``timezone.utc`` for ``"Etc/UTC"``; else in the
    ``zoneinfo.ZoneInfo`` of `time_zone` when Python knows that zone and it gives the same UTC
    offset at that time; else at a fixed offset (``datetime.timezone``) named `zone_abbr`.
    The wall time and the offset, hence the instant, are kept in every case."""
    import datetime as dt  # on first use: start-up does not pay for it

    naive = dt.datetime(year, month, day, hour, minute, second, microsecond)
    offset = dt.timedelta(seconds=utc_offset + std_offset)
    if time_zone == "Etc/UTC" and not offset:
        return naive.replace(tzinfo=dt.timezone.utc)
    zone = _zone(time_zone)
    if zone is not None:
        for fold in (0, 1):
            zoned = naive.replace(tzinfo=zone, fold=fold)
            if zoned.utcoffset() == offset:
                return zoned
    return naive.replace(tzinfo=dt.timezone(offset, zone_abbr))


def _zone(key: str) -> dt.tzinfo | None:
    try:
        import zoneinfo

        return zoneinfo.ZoneInfo(key)
    except Exception:  # noqa: BLE001 - no such zone, no time zone database: a fixed offset
        return None
