"""Per-key FIFO execution with cross-key concurrency and a global bound.

Commands with the same record key must reach the API in order (speak after start, stop last);
commands with different keys are independent. Each key with queued work gets one task that runs
its queue to the end and then exits, so the number of tasks follows the number of *active* keys,
not the number of commands, and an idle key costs nothing. A semaphore bounds how many commands
execute at once across all keys; a slow or failing key holds at most one slot.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

JobT = TypeVar("JobT")
Key = tuple[int, Hashable]  # (partition, record key): ordering never spans partitions


class KeyedScheduler(Generic[JobT]):
    """Runs `run(job)` for submitted jobs, FIFO per key, at most `limit` concurrently."""

    def __init__(
        self,
        limit: int,
        run: Callable[[JobT], Awaitable[None]],
        on_error: Callable[[BaseException], None],
    ) -> None:
        """`run` must handle command-level failures itself; anything it raises is fatal for
        the key: `on_error` is told and the key's remaining jobs are left unfinished, so their
        offsets are never committed and they are redelivered after the worker restarts."""
        self._run = run
        self._on_error = on_error
        self._slots = asyncio.Semaphore(limit)
        self._queues: dict[Key, deque[JobT]] = {}
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._running = 0

    @property
    def running(self) -> int:
        """Jobs executing right now (holding a slot)."""
        return self._running

    @property
    def active_keys(self) -> int:
        """Keys with queued or running work."""
        return len(self._queues)

    def submit(self, key: Key, job: JobT) -> None:
        """Queue `job` behind earlier jobs of the same key."""
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(job)
            return
        self._queues[key] = deque((job,))
        self._tasks[key] = asyncio.create_task(self._drain_key(key), name=f"key-{key[0]}")

    async def _drain_key(self, key: Key) -> None:
        queue = self._queues[key]
        try:
            while queue:
                async with self._slots:
                    self._running += 1
                    try:
                        await self._run(queue[0])
                    finally:
                        self._running -= 1
                queue.popleft()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported to the owner, which stops the worker
            self._on_error(exc)
        finally:
            del self._queues[key]
            del self._tasks[key]

    def discard_queued(self, partitions: set[int]) -> int:
        """Drop jobs of `partitions` that have not started; return how many were dropped.

        Used when partitions are revoked: their unstarted records will be redelivered to the new
        owner, so running them here would only create duplicates.
        """
        dropped = 0
        for key, queue in self._queues.items():
            if key[0] in partitions and len(queue) > 1:
                dropped += len(queue) - 1
                head = queue[0]
                queue.clear()
                queue.append(head)
        return dropped

    async def wait(self, partitions: set[int] | None, seconds: float) -> bool:
        """Wait until the work of `partitions` (all when None) has finished; False on timeout."""
        tasks = [t for k, t in self._tasks.items() if partitions is None or k[0] in partitions]
        if not tasks:
            return True
        _, pending = await asyncio.wait(tasks, timeout=seconds)
        return not pending

    async def cancel(self, partitions: set[int] | None) -> None:
        """Cancel the work of `partitions` (all when None) and wait for the tasks to unwind."""
        tasks = [t for k, t in self._tasks.items() if partitions is None or k[0] in partitions]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
