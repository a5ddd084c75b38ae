"""Waiting for a poller's next interval or batch while the progress line keeps moving."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["TICK_S", "next_while_ticking"]

#: How often the progress line is refreshed while the poller works.
TICK_S = 0.25

_T = TypeVar("_T")


async def next_while_ticking(
    items: AsyncIterator[_T],
    *,
    tick: Callable[[], None],
    caught_up: Callable[[], Awaitable[None]] | None = None,
) -> _T | None:
    """The next of ``items``, calling ``tick`` every :data:`TICK_S` while waiting.

    ``None`` at the end of ``items``, or once ``caught_up()`` (everything the API shows
    is handed out: decided from the API's answers, so it holds however short the poll
    interval) returns before the next item comes.
    """
    task: asyncio.Future[_T] = asyncio.ensure_future(anext(items))
    idle = asyncio.ensure_future(caught_up()) if caught_up is not None else None
    waiters: set[asyncio.Future[Any]] = {task} if idle is None else {task, idle}
    try:
        while True:
            done, _ = await asyncio.wait(
                waiters, timeout=TICK_S, return_when=asyncio.FIRST_COMPLETED
            )
            if task in done:
                break
            tick()
            if idle is not None and idle in done:
                task.cancel()
                await asyncio.wait({task})
                break
    except asyncio.CancelledError:
        # Ctrl-C: stop the pending fetch before the poller is closed, so that closing
        # never runs alongside it.  What it handed out just now is neither written nor
        # committed: it comes again on the next run (a batch being gathered goes back).
        task.cancel()
        await asyncio.wait({task})
        raise
    finally:
        if idle is not None:
            idle.cancel()
    if task.cancelled():
        return None
    try:
        # Handed out just as we stopped waiting: it is in hand, so it is written.
        return task.result()
    except StopAsyncIteration:
        return None
