"""The Python side of ``Snex.stream``: what the code returns (a generator, an async generator,
or any iterable) is kept in the stream's own environment and read in batches on demand."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from .code import code_value, compile_code

_KEY = "__snex_stream__"


class _Stream:
    """An iterator being read by Elixir, and an error to raise once the items read before it
    have been delivered."""

    def __init__(self, value: Any) -> None:
        if hasattr(value, "__aiter__"):
            self.aiter: AsyncIterator[Any] | None = value.__aiter__()
            self.iter: Iterator[Any] | None = None
        elif hasattr(value, "__iter__"):
            self.aiter = None
            self.iter = iter(value)
        else:
            raise TypeError(
                f"Snex.stream: the code returned {type(value).__name__!r}, which is not an "
                "iterable or async iterable"
            )
        self.error: BaseException | None = None


async def open_stream(env: dict[str, Any], src: str, file: str, line: int) -> None:
    """Runs `src` in `env` and keeps the iterable it returns for `next_batch`."""
    code = compile_code(src, file, line)
    env[_KEY] = _Stream(await code_value(code, env))


async def next_batch(env: dict[str, Any], size: int) -> tuple[list[Any], bool]:
    """Up to `size` items, and whether the iterable is exhausted. An error raised after some
    items of the batch is raised by the next call, so that those items are delivered first."""
    stream: _Stream = env[_KEY]
    if stream.error is not None:
        error, stream.error = stream.error, None
        raise error
    items: list[Any] = []
    try:
        while len(items) < size:
            if stream.aiter is not None:
                items.append(await stream.aiter.__anext__())
            else:
                assert stream.iter is not None
                items.append(next(stream.iter))
    except (StopIteration, StopAsyncIteration):
        return items, True
    except Exception as e:
        if not items:
            raise
        stream.error = e
    return items, False


def _closer(env: dict[str, Any]) -> tuple[Any, bool] | None:
    """Forgets the stream of `env` and returns what closes its iterable, and whether that is a
    coroutine function (``aclose``); None if there is nothing to close."""
    stream: _Stream | None = env.pop(_KEY, None)
    if stream is None:
        return None
    if stream.aiter is not None:
        aclose = getattr(stream.aiter, "aclose", None)
        return None if aclose is None else (aclose, True)
    close = getattr(stream.iter, "close", None)
    return None if close is None else (close, False)


def discard(env: dict[str, Any]) -> None:
    """Closes the stream of an environment being destroyed (its consumer is gone), if any: the
    generator's frame refers to the environment, so dropping the environment alone would leave
    the generator to Python's cycle collector, with its ``finally`` run late or never."""
    closer = _closer(env)
    if closer is None:
        return
    close, is_async = closer
    if is_async:
        asyncio.get_running_loop().create_task(close())
    else:
        # Nobody is left to report an error of the generator's own cleanup to.
        with contextlib.suppress(Exception):
            close()


async def close_stream(env: dict[str, Any]) -> None:
    """Closes the iterable (its ``finally`` blocks run) and forgets it."""
    closer = _closer(env)
    if closer is None:
        return
    close, is_async = closer
    if is_async:
        await close()
    else:
        close()
