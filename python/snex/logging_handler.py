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

# Metadata set from a record attribute when the attribute is set (not None).
_OPTIONAL = (
    ("python_process_id", "process"),
    ("python_thread_id", "thread"),
    ("python_thread_name", "threadName"),
    ("python_task_name", "taskName"),
)


def _level(levelno: int) -> Atom:
    for threshold, name in _LEVELS:
        if levelno >= threshold:
            return Atom(name)
    return Atom("debug")


class LoggingHandler(logging.Handler):
    """Sends records to Elixir's ``Logger``, at the matching level; works from any thread.

    The metadata of each message, in order (later steps override earlier ones):

    - `default_metadata`, keys as given;
    - ``application: :snex`` and ``domain: [:snex, :python]``, unless already there;
    - ``file``, ``line``, ``time`` (µs since the epoch), ``python_logger_name``,
      ``python_log_level`` (the level's name), ``python_module``, ``python_function``, and
      when set ``python_process_id``, ``python_thread_id``, ``python_thread_name``,
      ``python_task_name`` and ``python_exception`` (the class name of the logged exception);
    - each key of `extra_metadata_keys` that the record has (``logger.info(..., extra={...})``).
    """

    def __init__(
        self,
        level: int = logging.NOTSET,
        *,
        default_metadata: Mapping[str, Any] | None = None,
        extra_metadata_keys: Iterable[str] | None = None,
    ) -> None:
        """See the class docstring."""
        super().__init__(level)
        self.default_metadata = {Atom(k): v for k, v in (default_metadata or {}).items()}
        self.extra_metadata_keys = tuple(extra_metadata_keys or ())

    def metadata(self, record: logging.LogRecord) -> dict[Atom, Any]:
        """The Logger metadata of `record` (see the class docstring)."""
        metadata = dict(self.default_metadata)
        metadata.setdefault(Atom("application"), Atom("snex"))
        metadata.setdefault(Atom("domain"), [Atom("snex"), Atom("python")])
        metadata[Atom("file")] = record.pathname
        metadata[Atom("line")] = record.lineno
        metadata[Atom("time")] = int(record.created * 1_000_000)
        metadata[Atom("python_logger_name")] = record.name
        metadata[Atom("python_log_level")] = record.levelname
        metadata[Atom("python_module")] = record.module
        metadata[Atom("python_function")] = record.funcName
        for key, attr in _OPTIONAL:
            value = getattr(record, attr, None)
            if value is not None:
                metadata[Atom(key)] = value
        if record.exc_info and record.exc_info[0] is not None:
            metadata[Atom("python_exception")] = record.exc_info[0].__name__
        for key in self.extra_metadata_keys:
            if hasattr(record, key):
                metadata[Atom(key)] = getattr(record, key)
        return metadata

    def emit(self, record: logging.LogRecord) -> None:
        """Casts the record to Elixir; never raises."""
        try:
            entry = {
                Atom("level"): _level(record.levelno),
                Atom("message"): self.format(record),
                Atom("metadata"): self.metadata(record),
            }
            cast_now("Elixir.Snex.PythonLogger", "log", [entry])
        except Exception:  # noqa: BLE001 - a logging call must never raise
            self.handleError(record)
