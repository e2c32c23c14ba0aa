"""``capture_output``: what a request's code prints goes to the Elixir caller's group leader.

``sys.stdout`` and ``sys.stderr`` are wrapped once, at start-up. A write checks the request the
current context belongs to (a ``ContextVar`` set while a capturing request runs, and inherited
by the tasks it creates); with one, the text is sent to Elixir as an ``OUTPUT`` frame of that
request, else it goes to the original stream. Threads started by the code do not inherit the
context and print to the original streams.
"""

from __future__ import annotations

import contextvars
import io
from collections.abc import Callable
from typing import Any, TextIO

#: The id of the capturing request the current context belongs to.
current: contextvars.ContextVar[int | None] = contextvars.ContextVar("snex_capture", default=None)


class CapturingStream(io.TextIOBase):
    """A text stream that sends what a capturing request writes to `send`, and everything
    else to `original`."""

    def __init__(self, original: TextIO, name: str, send: Callable[[int, str, str], None]) -> None:
        """Wraps `original` (``"stdout"`` or ``"stderr"``, as `name` says)."""
        super().__init__()
        self._original = original
        self._name = name
        self._send = send

    def write(self, text: str) -> int:
        """Writes `text` to the caller of the current request, or to the original stream."""
        req_id = current.get()
        if req_id is None:
            return self._original.write(text)
        self._send(req_id, self._name, str(text))
        return len(text)

    def flush(self) -> None:
        """Flushes the original stream."""
        self._original.flush()

    def fileno(self) -> int:
        """The original stream's file descriptor."""
        return self._original.fileno()

    def isatty(self) -> bool:
        """Whether the original stream is a terminal."""
        return self._original.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """The original stream's encoding."""
        return self._original.encoding

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


def install(send: Callable[[int, str, str], None]) -> None:
    """Wraps ``sys.stdout`` and ``sys.stderr`` (those that exist)."""
    import sys

    if sys.stdout is not None:
        sys.stdout = CapturingStream(sys.stdout, "stdout", send)
    if sys.stderr is not None:
        sys.stderr = CapturingStream(sys.stderr, "stderr", send)
