"""Background tasks with an owner: named, logged when they fail, cancelled and awaited at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from .db.leases import Lease
from .errors import DatabaseUnavailable

log = logging.getLogger(__name__)


async def every(interval: float, work: Callable[[], Awaitable[Any]], name: str, *, first_after: float = 0) -> None:
    """Run `work` after `first_after` seconds and then every `interval` seconds; a failure is logged and
    the loop goes on (a database refusing writes only at debug level: it says so itself, once)."""
    await asyncio.sleep(first_after)
    while True:
        try:
            await work()
        except DatabaseUnavailable as exc:  # the database logged it once; no traceback every round
            log.debug("background task %s: %s; trying again in %.0f s", name, exc.detail, interval)
        except Exception:
            log.exception("background task %s failed; trying again in %.0f s", name, interval)
        await asyncio.sleep(interval)


async def every_exclusively(
    lease: Lease, interval: float, work: Callable[[], Awaitable[Any]], name: str, *, first_after: float = 0
) -> None:
    """`every`, but the work runs only on the daemon holding `lease` (db/leases.py): every daemon runs this,
    trying to take the lease while another holds it, so the work goes on when its holder dies."""
    with contextlib.suppress(DatabaseUnavailable):  # first, so that the first round runs where it is free
        await lease.acquire()
    async with running({f"{name}-lease": lease.keep()}):
        await every(interval, functools.partial(lease.run, work), name, first_after=first_after)


@contextlib.asynccontextmanager
async def running(coroutines: dict[str, Coroutine[Any, Any, None]]) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Run the named coroutines as tasks for the duration of the block; cancel and await them after."""
    tasks = [asyncio.create_task(coro, name=name) for name, coro in coroutines.items()]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            # asyncio.wait, not `await task`: a task's own CancelledError is expected here, but one raised
            # because the caller is cancelled meanwhile (shutdown while a lease is being given up) must go
            # on up; swallowed, the caller would carry on and its shutdown would wait for it forever.
            await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                log.error("background task %s ended with an error", task.get_name(), exc_info=task.exception())
