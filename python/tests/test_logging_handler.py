"""``snex.LoggingHandler``'s metadata, built from a log record."""

from __future__ import annotations

import logging
import sys

import pytest

from snex import Atom, LoggingHandler


def record(**extra: object) -> logging.LogRecord:
    logger = logging.getLogger("snex.test")
    try:
        raise KeyError("k")
    except KeyError:
        exc_info = sys.exc_info()
    rec = logger.makeRecord(
        "snex.test", logging.WARNING, "/src/app.py", 12, "msg %s", ("x",), exc_info, "handle"
    )
    rec.__dict__.update(extra)
    return rec


def test_metadata_of_a_record() -> None:
    rec = record(tenant="acme")
    handler = LoggingHandler(default_metadata={"request_id": 7}, extra_metadata_keys=["tenant"])
    meta = handler.metadata(rec)
    assert all(type(k) is Atom for k in meta)
    assert meta == {
        "request_id": 7,
        "application": Atom("snex"),
        "domain": [Atom("snex"), Atom("python")],
        "file": "/src/app.py",
        "line": 12,
        "time": int(rec.created * 1_000_000),
        "python_logger_name": "snex.test",
        "python_log_level": "WARNING",
        "python_module": "app",
        "python_function": "handle",
        "python_process_id": rec.process,
        "python_thread_id": rec.thread,
        "python_thread_name": rec.threadName,
        **({"python_task_name": rec.taskName} if getattr(rec, "taskName", None) else {}),
        "python_exception": "KeyError",
        "tenant": "acme",
    }


def test_defaults_give_way_and_extra_keys_win() -> None:
    rec = record(line="from extra")
    handler = LoggingHandler(
        default_metadata={"application": "mine", "domain": ["d"], "file": "ignored"},
        extra_metadata_keys=["line", "absent"],
    )
    meta = handler.metadata(rec)
    assert meta["application"] == "mine"
    assert meta["domain"] == ["d"]
    assert meta["file"] == "/src/app.py"
    assert meta["line"] == "from extra"
    assert "absent" not in meta


def test_unset_attributes_are_left_out() -> None:
    rec = record()
    rec.exc_info = None
    rec.process = None
    rec.threadName = None
    meta = LoggingHandler().metadata(rec)
    assert "python_exception" not in meta
    assert "python_process_id" not in meta
    assert "python_thread_name" not in meta


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        LoggingHandler(logging.INFO, {"a": 1})  # type: ignore[misc]
    assert LoggingHandler(logging.INFO).level == logging.INFO
