"""The interpreter's event loop, with eager execution of callbacks that become ready.

asyncio runs, in each iteration, the callbacks that were ready when it started, then polls the
selector (a system call) before running the callbacks those made ready. A request whose reply
wakes a task, which schedules its next step, thus pays one poll per hop. `EagerEventLoop`
keeps running newly ready callbacks within the same iteration, for a bounded number of rounds,
before polling again; I/O and timers are still served at least once per iteration.

On Python 3.12+, tasks also start eagerly (``asyncio.eager_task_factory``): code with an
``await`` runs up to its first suspension in the callback that created it. On 3.10 and 3.11
the loop above is the polyfill: a new task's first step runs in the same iteration.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

#: Extra rounds of newly ready callbacks run after an iteration before the selector is polled.
MAX_EAGER_ROUNDS = 16


class EagerEventLoop(asyncio.SelectorEventLoop):
    """A selector event loop that runs callbacks made ready during an iteration at once."""

    def _run_once(self) -> None:
        super()._run_once()  # type: ignore[misc]
        ready: deque[asyncio.Handle] = self._ready  # type: ignore[attr-defined]
        rounds = 0
        while ready and rounds < MAX_EAGER_ROUNDS and not self._stopping:  # type: ignore[attr-defined]
            rounds += 1
            for _ in range(len(ready)):
                handle = ready.popleft()
                if not handle._cancelled:
                    handle._run()


def new_event_loop(eager: bool) -> asyncio.AbstractEventLoop:
    """The interpreter's loop: eager (`EagerEventLoop`, eager tasks where Python has them) or a
    plain asyncio loop."""
    if not eager:
        return asyncio.new_event_loop()
    loop = EagerEventLoop()
    factory: Any = getattr(asyncio, "eager_task_factory", None)
    if factory is not None:
        loop.set_task_factory(factory)
    return loop
