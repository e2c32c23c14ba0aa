"""Describing exceptions for Elixir, whatever the exception does: these functions never raise.

A user's exception may have a ``__str__`` that raises, or return something odd; the reply that
reports it must still be built.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from types import TracebackType

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def exception_text(exc: BaseException) -> str:
    """``str(exc)``, or the class name when that is empty; when ``str()`` fails:
    ``"Name: <exception str() failed: Inner: text>"``."""
    try:
        text = str(exc)
        if type(text) is not str:
            text = str.__str__(text)
        return text or type(exc).__name__
    except BaseException as e:  # noqa: BLE001 - a broken __str__ must not break the reply
        return f"{type(exc).__name__}: <exception str() failed: {_describe_shallow(e)}>"


def describe_exception(exc: BaseException) -> str:
    """``"Name: text"`` (or ``"Name"``), as the last line of a traceback."""
    name = type(exc).__name__
    text = exception_text(exc)
    return name if text == name else f"{name}: {text}"


def _describe_shallow(exc: BaseException) -> str:
    name = type(exc).__name__
    try:
        text = str(exc)
        if type(text) is not str:
            text = str.__str__(text)
    except BaseException:  # noqa: BLE001 - the name alone then
        return name
    return f"{name}: {text}" if text else name


def format_exception(exc: BaseException) -> list[str]:
    """The traceback of `exc` without Snex's own frames, as lines (each a plain `str`)."""
    try:
        tb: TracebackType | None = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
            tb = tb.tb_next
        lines = traceback.format_exception(type(exc), exc, tb)
        return [line if type(line) is str else str.__str__(line) for line in lines]
    except BaseException as e:  # noqa: BLE001 - still say what the exception was
        return [
            f"{describe_exception(exc)}\n",
            f"(the traceback could not be formatted: {describe_exception(e)})\n",
        ]


def report(message: str) -> None:
    """Writes `message` to stderr (fd 2 directly: ``sys.stderr`` may be anything by now)."""
    with contextlib.suppress(BaseException):  # nowhere left to report to
        os.write(2, (message + "\n").encode("utf-8", "replace"))
