"""Per-key FIFO execution with cross-key concurrency and a global bound.

Commands with the same record key must reach the API in order (speak after start, stop last);
commands with different keys are independent. Each key with queued work gets one task that runs
its queue to the end and then exits, so the number of tasks follows the number of *active* keys,
not the number of commands, and an idle key costs nothing. A semaphore bounds how many commands
execute at once across all keys; a slow or failing key holds at most one slot.

Three ways a key's work ends early:
- `discard_queued`: work not started is dropped (its partition is being released; the next
  owner reads those records again), including a key's next job while it still waits for a slot;
- `abandon`: running work is cancelled with its abandon mark set, so that `run` can decide what
  the interruption means (it raises `AbandonedError` to leave the record unfinished);
- a failure: anything else `run` raises blocks the key. Its remaining and later work stays
  queued and never runs in this process, so no later command of the key can overtake the one
  that failed; `on_error` is told, and the owner decides what happens to the process.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, TypeVar

from worker.errors import AbandonedError

Key = tuple[int, Hashable]  # (partition, record key): ordering never spans partitions


class Abandonable(Protocol):
    """A unit of work that can be told it is being abandoned."""

    abandoned: bool


JobT = TypeVar("JobT", bound=Abandonable)


class KeyedScheduler(Generic[JobT]):
    """Runs `run(job)` for submitted jobs, FIFO per key, at most `limit` concurrently."""

    def __init__(
        self,
        limit: int,
        run: Callable[[JobT], Awaitable[None]],
        on_error: Callable[[BaseException, JobT], None],
    ) -> None:
        self._run = run
        self._on_error = on_error
        self._slots = asyncio.Semaphore(limit)
        self._queues: dict[Key, deque[JobT]] = {}
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._blocked: set[Key] = set()
        self._started: set[Key] = set()  # keys whose head job holds a slot
        self._running = 0

    @property
    def running(self) -> int:
        """Jobs executing right now (holding a slot)."""
        return self._running

    @property
    def active_keys(self) -> int:
        """Keys with queued, running or blocked work."""
        return len(self._queues)

    @property
    def blocked_keys(self) -> int:
        """Keys stopped by a failure."""
        return len(self._blocked)

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
                    if not queue:
                        break  # discarded while it waited for the slot
                    self._running += 1
                    self._started.add(key)
                    try:
                        await self._run(queue[0])
                    finally:
                        self._running -= 1
                        self._started.discard(key)
                queue.popleft()
        except AbandonedError:
            pass  # the record stays unfinished; its partition is being released
        except asyncio.CancelledError:
            self._forget(key)
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the owner; the key stays blocked
            self._blocked.add(key)
            del self._tasks[key]
            self._on_error(exc, queue[0])
            return
        self._forget(key)

    def _forget(self, key: Key) -> None:
        del self._queues[key]
        del self._tasks[key]

    def discard_queued(self, partitions: set[int]) -> int:
        """Drop jobs of `partitions` that have not started; return how many were dropped."""
        dropped = 0
        for key in [k for k in self._queues if k[0] in partitions]:
            queue = self._queues[key]
            if key in self._blocked:
                dropped += len(queue)
                self._blocked.discard(key)
                del self._queues[key]
            elif key not in self._started:  # its head still waits for a slot
                dropped += len(queue)
                queue.clear()
            elif len(queue) > 1:
                dropped += len(queue) - 1
                head = queue[0]
                queue.clear()
                queue.append(head)
        return dropped

    async def wait(self, partitions: set[int] | None, seconds: float) -> bool:
        """Wait until the running work of `partitions` (all when None) ends; False on timeout."""
        tasks = [t for k, t in self._tasks.items() if self._queues[k] and _within(k, partitions)]
        if not tasks:
            return True
        _, pending = await asyncio.wait(tasks, timeout=seconds)
        return not pending

    def abandon(self, partitions: set[int] | None) -> int:
        """Interrupt the running work of `partitions`, marked as abandoned; return how many."""
        tasks = 0
        for key, task in self._tasks.items():
            if self._queues[key] and _within(key, partitions):
                self._queues[key][0].abandoned = True
                task.cancel()
                tasks += 1
        return tasks

    async def cancel(self, partitions: set[int] | None) -> None:
        """Cancel the work of `partitions` (all when None) and wait for the tasks to unwind."""
        tasks = self._tasks_of(partitions)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _tasks_of(self, partitions: set[int] | None) -> list[asyncio.Task[None]]:
        return [t for k, t in self._tasks.items() if _within(k, partitions)]


def _within(key: Key, partitions: set[int] | None) -> bool:
    return partitions is None or key[0] in partitions
