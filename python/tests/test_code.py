"""Compiling user code: top-level return and await, line numbers, the cache."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from snex.code import (
    RETURN_NAME,
    SnexReturn,
    code_value,
    compile_cache_info,
    compile_code,
    run_code,
)


def run(src: str, env: dict[str, Any] | None = None, file: str = "<t>", line: int = 0) -> Any:
    env = env if env is not None else {}
    env.setdefault(
        "__builtins__",
        {**__builtins__, RETURN_NAME: SnexReturn}  # type: ignore[dict-item]
        if isinstance(__builtins__, dict)
        else {**vars(__builtins__), RETURN_NAME: SnexReturn},
    )
    code = compile_code(src, file, line)
    if code.co_flags & inspect.CO_COROUTINE:
        return asyncio.run(code_value(code, env))
    return run_code(code, env)


def test_return_at_top_level_and_in_blocks() -> None:
    assert run("return 1") == 1
    assert run("x = 1") is None
    assert run("for i in range(5):\n    if i == 2:\n        return i") == 2
    assert run("try:\n    return 'a'\nexcept Exception:\n    return 'b'") == "a"
    assert run("while True:\n    return 'w'") == "w"


def test_a_lone_return_is_its_expression() -> None:
    # Compiled as an expression (no SnexReturn raised): the same values, errors and lines.
    assert RETURN_NAME not in compile_code("return 1", "<t>", 0).co_names
    assert RETURN_NAME in compile_code("x = 1\nreturn x", "<t>", 0).co_names
    assert run("return") is None
    assert run("return (1, 'a')") == (1, "a")
    assert run("return await asyncio.sleep(0, 'slept')", {"asyncio": asyncio}) == "slept"
    with pytest.raises(ZeroDivisionError) as info:
        run("return 1 / 0", file="f.ex", line=10)
    tb = info.value.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    assert tb is not None
    assert (tb.tb_frame.f_code.co_filename, tb.tb_lineno) == ("f.ex", 10)


def test_a_returned_coroutine_is_the_value_not_awaited() -> None:
    async def later() -> str:
        return "later"

    for src in ("return later()", "x = later()\nreturn x"):
        value = run(src, {"later": later})
        assert inspect.iscoroutine(value)
        value.close()
        # The same where the code itself awaits something first.
        awaited = run("await asyncio.sleep(0)\n" + src, {"later": later, "asyncio": asyncio})
        assert inspect.iscoroutine(awaited)
        awaited.close()
        # And where code without await runs as a task (``eager_polyfill?: false``).
        env: dict[str, Any] = {"later": later}
        run("x = 0", env)  # builtins set up
        in_task = asyncio.run(code_value(compile_code(src, "<t>", 0), env))
        assert inspect.iscoroutine(in_task)
        in_task.close()


def test_return_inside_functions_is_untouched() -> None:
    assert run("def f():\n    return 3\nreturn f() * 2") == 6
    assert run("class C:\n    def m(self):\n        return 4\nreturn C().m()") == 4
    assert run("g = lambda: 5\nreturn g()") == 5


def test_finally_runs() -> None:
    env: dict[str, Any] = {}
    assert run("log = []\ntry:\n    return 1\nfinally:\n    log.append('f')", env) == 1
    assert env["log"] == ["f"]


def test_top_level_await() -> None:
    assert run("import asyncio\nawait asyncio.sleep(0)\nreturn 'done'") == "done"


def test_line_offsets() -> None:
    env: dict[str, Any] = {}
    with pytest.raises(ValueError) as info:
        run("a = 1\nraise ValueError()", env, file="f.ex", line=10)
    tb = info.value.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    assert tb is not None
    assert tb.tb_frame.f_code.co_filename == "f.ex"
    assert tb.tb_lineno == 11


def test_cache_returns_the_same_code_object() -> None:
    hits, _ = compile_cache_info()
    a = compile_code("return 42", "<cache>", 0)
    b = compile_code("return 42", "<cache>", 0)
    assert a is b
    assert compile_cache_info()[0] == hits + 1
