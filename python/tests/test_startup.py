"""Start-up: what only some requests need is imported on first use, not before the first
request (see "Start-up" in docs/decisions.md); the names imported on first use work."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from support import PYTHON_DIR, Peer

import snex
from snex import codec
from snex.runner import REPLY_OK

#: The package's modules imported on first use only.
LAZY_SNEX = {"snex.encoding", "snex.logging_handler", "snex.workers"}
#: Standard modules that only some requests need; a Python whose plain ``asyncio`` and
#: ``pickle`` (or site) import them anyway is not held against us.
LAZY_STDLIB = {"datetime", "decimal", "numbers", "zoneinfo", "tempfile", "fractions"}


def modules_of(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(done.stdout.split())


def test_a_fresh_interpreter_serves_its_first_request_without_them() -> None:
    peer = Peer()
    try:
        kind, loaded = peer.eval("import sys\nreturn sorted(sys.modules)")
    finally:
        peer.close()
    assert kind == REPLY_OK
    assert "snex.runner" in loaded
    assert LAZY_SNEX & set(loaded) == set()
    floor = modules_of("import asyncio, pickle")
    assert (LAZY_STDLIB & set(loaded)) - floor == set()


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("LoggingHandler", "snex.logging_handler"),
        ("EncodingOpt", "snex.encoding"),
        ("EncodingOpts", "snex.encoding"),
        ("serve", "snex.workers"),
        ("serve_forever", "snex.workers"),
        ("connect", "snex.workers"),
        ("listen", "snex.workers"),
        ("io_loop_for_connection", "snex.workers"),
    ],
)
def test_lazy_names_are_the_modules_own(name: str, module: str) -> None:
    assert getattr(snex, name) is getattr(sys.modules[module], name)
    assert name in dir(snex)
    assert name in snex.__all__


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        snex.nope  # noqa: B018
    with pytest.raises(ImportError):
        exec("from snex import nope", {})


def test_star_import_gives_every_public_name() -> None:
    namespace: dict[str, Any] = {}
    exec("from snex import *", namespace)
    assert set(snex.__all__) <= set(namespace)


@pytest.mark.parametrize(
    ("imports", "value", "expected"),
    [
        # The C modules alone, without the modules that re-export them.
        ("import _decimal", "_decimal.Decimal('1.50')", "1.50"),
        ("import _datetime", "_datetime.date(2024, 2, 29)", "date"),
        ("import fractions", "fractions.Fraction(1, 2)", "0.5"),
    ],
)
def test_common_values_need_no_import_of_their_own(imports: str, value: str, expected: str) -> None:
    # In a fresh process: here `decimal` and `datetime` are imported already.
    code = f"""
import pickle, sys
from snex import codec
{imports}
v = pickle.loads(codec.encode({value}))
print("date" if isinstance(v, dict) else v)
"""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(PYTHON_DIR)},
    )
    assert done.stdout.strip() == expected


def test_encode_error_hints_import_numbers_when_needed() -> None:
    with pytest.raises(snex.EncodeError, match="no complex numbers"):
        codec.encode(1j)
