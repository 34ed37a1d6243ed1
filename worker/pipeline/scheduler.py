"""Per-key FIFO execution with cross-key concurrency and a global bound.

Commands with the same record key must reach the API in order (speak after start, stop last);
commands with different keys are independent. A pool of long-lived worker tasks, at most `limit`
of them, takes keys that have work from a ready queue and runs each key's jobs in order; the pool
size is the bound on jobs running at once, and a slow or failing key holds one worker. Workers
are started as work arrives and then park when there is none, so a busy pipeline creates no task
per command.

Three ways a key's work ends early:
- `discard_queued`: work not started is dropped (its partition is being released; the next
  owner reads those records again);
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
        self._limit = limit
        self._run = run
        self._on_error = on_error
        self._queues: dict[Key, deque[JobT]] = {}
        self._ready: deque[Key] = deque()  # keys with work and no worker (stale entries skipped)
        self._running: dict[Key, asyncio.Task[None]] = {}  # key -> the worker on it
        self._drained: dict[Key, asyncio.Future[None]] = {}  # for `wait`, made on demand
        self._blocked: set[Key] = set()
        self._workers: set[asyncio.Task[None]] = set()
        self._parked: deque[asyncio.Future[None]] = deque()

    @property
    def running(self) -> int:
        """Keys whose job is executing right now (each holds one worker)."""
        return len(self._running)

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
        self._ready.append(key)
        while self._parked:
            parked = self._parked.popleft()
            if not parked.done():  # a worker cancelled while parked left a cancelled future
                parked.set_result(None)
                return
        if len(self._workers) < self._limit:
            worker = asyncio.create_task(self._work(), name="key-worker")
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)

    async def _work(self) -> None:
        """Take ready keys and run their jobs until cancelled."""
        worker = asyncio.current_task()
        assert worker is not None  # noqa: S101 - always inside a task
        loop = asyncio.get_running_loop()
        while True:
            if not self._ready:
                parked = loop.create_future()
                self._parked.append(parked)
                await parked
                continue
            key = self._ready.popleft()
            queue = self._queues.get(key)
            if queue is None or key in self._running or key in self._blocked:
                continue  # dropped, or another worker has it
            self._running[key] = worker
            try:
                await self._drain(key, queue)
            finally:
                del self._running[key]
                self._settle(key)

    async def _drain(self, key: Key, queue: deque[JobT]) -> None:
        try:
            while queue:
                await self._run(queue[0])
                queue.popleft()
        except AbandonedError:
            pass  # the record stays unfinished; its partition is being released
        except asyncio.CancelledError:
            self._forget(key)
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the owner; the key stays blocked
            self._blocked.add(key)
            self._on_error(exc, queue[0])
            return
        self._forget(key)

    def _forget(self, key: Key) -> None:
        self._queues.pop(key, None)

    def _settle(self, key: Key) -> None:
        """Tell `wait` that `key` has no running work any more."""
        drained = self._drained.pop(key, None)
        if drained is not None and not drained.done():
            drained.set_result(None)

    def discard_queued(self, partitions: set[int]) -> int:
        """Drop jobs of `partitions` that have not started; return how many were dropped."""
        dropped = 0
        for key in [k for k in self._queues if k[0] in partitions]:
            queue = self._queues[key]
            if key in self._running and key not in self._blocked:
                dropped += len(queue) - 1
                head = queue[0]
                queue.clear()
                queue.append(head)
            else:  # waiting for a worker, or blocked: nothing of it runs
                dropped += len(queue)
                self._blocked.discard(key)
                del self._queues[key]
                self._settle(key)
        return dropped

    async def wait(self, partitions: set[int] | None, seconds: float) -> bool:
        """Wait until the work of `partitions` (all when None) has ended; False on timeout.

        Blocked keys are not waited for: nothing of theirs runs any more.
        """
        loop = asyncio.get_running_loop()
        waiting = [
            self._drained.setdefault(key, loop.create_future())
            for key in self._queues
            if key not in self._blocked and (partitions is None or key[0] in partitions)
        ]
        if not waiting:
            return True
        _, pending = await asyncio.wait(waiting, timeout=seconds)
        return not pending

    def abandon(self, partitions: set[int] | None) -> int:
        """Interrupt the running work of `partitions`, marked as abandoned; return how many."""
        interrupted = 0
        for key, worker in self._running.items():
            if partitions is None or key[0] in partitions:
                self._queues[key][0].abandoned = True
                worker.cancel()
                interrupted += 1
        return interrupted

    async def cancel(self, partitions: set[int] | None) -> None:
        """Cancel the work of `partitions` (all, and every worker, when None) and wait.

        A worker cancelled this way ends; the pool starts another when work arrives.
        """
        if partitions is None:
            workers = list(self._workers)
            self._parked.clear()
        else:
            workers = [w for k, w in self._running.items() if k[0] in partitions]
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
