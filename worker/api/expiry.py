"""Request deadlines with one timer for all requests, not one per request.

aiohttp's request timeout arms a loop timer for every request and cancels it when the response
has arrived: at thousands of requests a second that is a large share of the client's CPU. A
request's deadline is seconds away and needs no millisecond precision, so the requests in flight
are kept in a dict instead, and one task wakes every `RESOLUTION_SECONDS` to cancel those past
their deadline. A request is thus given up at most that much later than asked.
"""

from __future__ import annotations

import asyncio
import itertools
from types import TracebackType
from typing import Self

RESOLUTION_SECONDS = 0.1


class Watch:
    """One request's deadline; `expired` tells its own cancellation from any other."""

    __slots__ = ("deadline", "expired", "task")

    def __init__(self, task: asyncio.Task[object], deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.expired = False


class RequestExpiry:
    """Cancels watched tasks past their deadline (an async context manager runs the sweeper)."""

    def __init__(self) -> None:
        self._watches: dict[int, Watch] = {}
        self._ids = itertools.count()
        self._sweeper: asyncio.Task[None] | None = None

    def watch(self, seconds: float) -> tuple[int, Watch]:
        """Watch the current task for `seconds`; unwatch the returned id when it is done."""
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - requests are sent from tasks
        watch = Watch(task, asyncio.get_running_loop().time() + seconds)
        token = next(self._ids)
        self._watches[token] = watch
        return token, watch

    def unwatch(self, token: int) -> None:
        """The request ended (either way)."""
        self._watches.pop(token, None)

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(RESOLUTION_SECONDS)
            now = loop.time()
            overdue = [t for t, w in self._watches.items() if w.deadline <= now]
            for token in overdue:
                watch = self._watches.pop(token)
                watch.expired = True
                watch.task.cancel()

    async def __aenter__(self) -> Self:
        self._sweeper = asyncio.create_task(self._sweep(), name="request-expiry")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
