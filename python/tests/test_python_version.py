"""The Python version check done before the package imports anything else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from snex import _python_version

PYTHON_DIR = Path(__file__).resolve().parents[1]

# Runs `python -m snex` the way the interpreter does, on a Python that says it is 3.9.18.
FAKE_OLD = """
import runpy, sys
sys.version_info = (3, 9, 18, "final", 0)
sys.argv = ["-m"]
runpy.run_module("snex", run_name="__main__", alter_sys=True)
"""


def run_as_old(code: str) -> subprocess.CompletedProcess[str]:
    """Runs `code` with the `snex` package importable."""
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR))
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_python_m_snex_on_an_old_python_exits_with_its_status_and_says_why() -> None:
    done = run_as_old(FAKE_OLD)
    assert done.returncode == _python_version.TOO_OLD_STATUS == 78
    assert "Snex needs Python >= 3.10" in done.stderr
    assert "is Python 3.9.18" in done.stderr
    assert sys.executable in done.stderr
    assert "Traceback" not in done.stderr


def test_importing_snex_on_an_old_python_raises_import_error() -> None:
    code = "import sys\nsys.version_info = (3, 8, 2, 'final', 0)\nimport snex\n"
    done = run_as_old(code)
    assert done.returncode == 1
    assert "ImportError: Snex needs Python >= 3.10" in done.stderr
    assert "is Python 3.8.2" in done.stderr


def test_a_recent_python_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["-m"])
    _python_version.check()


def test_message_names_the_versions() -> None:
    assert _python_version.message((3, 9, 1)).startswith("Snex needs Python >= 3.10, but ")
    assert _python_version.message((3, 9, 1)).endswith(" is Python 3.9.1")
