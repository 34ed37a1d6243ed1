"""Background tasks that must not die quietly.

The committer, the followers of the state and results topics, reconciliation and the loop
monitor run for the whole life of the worker. If one raises, the supervisor logs it, marks the
worker not ready (naming the task), and starts it again after a backoff that grows while it
keeps failing; once it runs again the worker is ready again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from worker.metrics import Metrics
from worker.observability.health import Health

log = structlog.get_logger(__name__)

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0


class Supervisor:
    """Owns the worker's background tasks: runs, restarts and finally cancels them."""

    def __init__(
        self,
        health: Health,
        metrics: Metrics,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._health = health
        self._metrics = metrics
        self._sleep = sleep
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run `run()` in the background, again after each failure, until `close`."""
        self._tasks.append(asyncio.create_task(self._keep(name, run), name=name))

    async def _keep(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            started = loop.time()
            try:
                await run()
            except Exception as error:
                if loop.time() - started > BACKOFF_MAX_SECONDS:
                    failures = 0  # it ran fine for a while: start the backoff over
                failures += 1
                delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (failures - 1))
                self._health.task_failed(name, f"{type(error).__name__}: {error}")
                self._metrics.task_restarts(name).inc()
                log.exception("background_task_failed", task=name, restart_in_seconds=delay)
                await self._sleep(delay)
                self._health.task_failed(name, None)
            else:
                return  # done (e.g. reconciliation switched off)

    async def close(self) -> None:
        """Cancel every task and wait for them to end."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
