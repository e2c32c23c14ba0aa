"""``snex.LoggingHandler``: Python log records to Elixir's ``Logger``."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from .interface import cast_now
from .types import Atom

_LEVELS = (
    (logging.CRITICAL, "critical"),
    (logging.ERROR, "error"),
    (logging.WARNING, "warning"),
    (logging.INFO, "info"),
)


def _level(levelno: int) -> Atom:
    for threshold, name in _LEVELS:
        if levelno >= threshold:
            return Atom(name)
    return Atom("debug")


class LoggingHandler(logging.Handler):
    """Sends records to ``Snex.PythonLogger`` (and so to ``Logger``); works from any thread.

    `default_metadata` is added to every record; `extra_metadata_keys` names record attributes
    (e.g. from ``extra=``) sent as metadata too. Metadata keys arrive prefixed with
    ``python_``.
    """

    def __init__(
        self,
        level: int = logging.NOTSET,
        default_metadata: Mapping[str, Any] | None = None,
        extra_metadata_keys: Iterable[str] = (),
    ) -> None:
        """See the class docstring."""
        super().__init__(level)
        self.default_metadata = dict(default_metadata or {})
        self.extra_metadata_keys = tuple(extra_metadata_keys)

    def emit(self, record: logging.LogRecord) -> None:
        """Casts the record to Elixir; never raises."""
        try:
            metadata = {Atom(k): v for k, v in self.default_metadata.items()}
            for key in self.extra_metadata_keys:
                if hasattr(record, key):
                    metadata[Atom(key)] = getattr(record, key)
            entry = {
                Atom("level"): _level(record.levelno),
                Atom("levelname"): record.levelname,
                Atom("message"): self.format(record),
                Atom("time_us"): int(record.created * 1_000_000),
                Atom("file"): record.pathname,
                Atom("line"): record.lineno,
                Atom("function"): record.funcName,
                Atom("logger"): record.name,
                Atom("thread"): record.threadName,
                Atom("process"): record.process,
                Atom("metadata"): metadata,
            }
            cast_now("Elixir.Snex.PythonLogger", "log", [entry])
        except Exception:  # noqa: BLE001 - a logging call must never raise
            self.handleError(record)
