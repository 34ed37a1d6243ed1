"""Per-key FIFO execution with cross-key concurrency, a global bound and fair turns.

Commands with the same record key must reach the API in order (speak after start, stop last);
commands with different keys are independent. A pool of long-lived worker tasks, at most `limit`
of them, takes keys that have work and runs each key's jobs in order; the pool size is the bound
on jobs running at once. Workers are started as work arrives and park when there is none, so a
busy pipeline creates no task per command.

Fairness: every job gets a sequence number when submitted, and a key waits for a worker under
the number of its oldest job, so when more keys are ready than workers, the oldest waiting record
goes next. A key whose queue keeps filling gives its worker up between two jobs whenever an older
record of another key is waiting, so it cannot hold a slot while others starve (and pin their
partitions' commit positions).

How a key's work ends early:
- `discard_queued`: work not started is dropped (its partition is being released; the next
  owner reads those records again);
- `abandon`: running work is marked abandoned and, while it is still interruptible, cancelled,
  so that `run` decides what the interruption means (`AbandonedError` leaves the record
  unfinished; a call that may have reached the API gets its `unknown` result instead). Work that
  is no longer interruptible (publishing the outputs of what it did) is only marked: it finishes;
- `kill`: running work is cancelled for good and its worker task ends; a killed job cannot turn
  the cancellation into anything else, so nothing parks after a kill;
- a failure: anything else `run` raises blocks the key. Its remaining and later work stays
  queued and never runs in this process, so no later command of the key can overtake the one
  that failed; `on_error` is told, and the owner decides what happens next.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, TypeVar

from worker.errors import AbandonedError

Key = tuple[int, Hashable]  # (partition, record key): ordering never spans partitions


class Interruptible(Protocol):
    """A unit of work that can be told it is being abandoned or killed."""

    abandoned: bool
    killed: bool
    interruptible: bool


JobT = TypeVar("JobT", bound=Interruptible)


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
        self._sequence = itertools.count()
        self._queues: dict[Key, deque[tuple[int, JobT]]] = {}
        # (sequence of the key's oldest job, key): keys waiting for a worker; stale entries of
        # keys that were dropped, taken or re-queued are skipped when popped
        self._ready: list[tuple[int, Key]] = []
        self._running: dict[Key, asyncio.Task[None]] = {}  # key -> the worker on it
        self._drained: dict[Key, asyncio.Future[None]] = {}  # for `ended`, made on demand
        self._blocked: set[Key] = set()
        self._workers: set[asyncio.Task[None]] = set()
        self._doomed: set[asyncio.Task[None]] = set()  # killed: end even if a job swallowed it
        self._parked: deque[asyncio.Future[None]] = deque()
        self._closing = False

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
        entry = (next(self._sequence), job)
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(entry)
            return
        self._queues[key] = deque((entry,))
        heapq.heappush(self._ready, (entry[0], key))
        self._wake(1)

    def _wake(self, wanted: int) -> None:
        """Get up to `wanted` more workers going: parked ones first, new ones up to the limit."""
        while wanted > 0 and self._parked:
            parked = self._parked.popleft()
            if not parked.done():  # a worker cancelled while parked left a cancelled future
                parked.set_result(None)
                wanted -= 1
        while wanted > 0 and len(self._workers) < self._limit:
            worker = asyncio.create_task(self._work(), name="key-worker")
            self._workers.add(worker)
            worker.add_done_callback(self._worker_ended)
            wanted -= 1

    def _worker_ended(self, worker: asyncio.Task[None]) -> None:
        """A killed worker ended: another one takes over the keys still waiting."""
        self._workers.discard(worker)
        self._doomed.discard(worker)
        if self._ready and not self._closing:
            self._wake(1)

    def _next_key(self) -> Key | None:
        """The waiting key with the oldest job, skipping stale entries."""
        while self._ready:
            sequence, key = heapq.heappop(self._ready)
            queue = self._queues.get(key)
            fresh = queue and queue[0][0] == sequence
            if fresh and key not in self._running and key not in self._blocked:
                return key
        return None

    async def _work(self) -> None:
        """Take ready keys and run their jobs until cancelled."""
        worker = asyncio.current_task()
        assert worker is not None  # noqa: S101 - always inside a task
        loop = asyncio.get_running_loop()
        while worker not in self._doomed:
            key = self._next_key()
            if key is None:
                parked = loop.create_future()
                self._parked.append(parked)
                await parked
                continue
            self._running[key] = worker
            try:
                await self._drain(key, self._queues[key])
            finally:
                del self._running[key]
                self._settle(key)

    async def _drain(self, key: Key, queue: deque[tuple[int, JobT]]) -> None:
        try:
            while queue:
                await self._run(queue[0][1])
                queue.popleft()
                if queue and self._ready and self._ready[0][0] < queue[0][0]:
                    # an older record of another key waits: take turns (`_settle` re-queues us)
                    return
        except AbandonedError:
            pass  # the record stays unfinished; its partition is being released
        except asyncio.CancelledError:
            self._forget(key)
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the owner; the key stays blocked
            self._blocked.add(key)
            self._on_error(exc, queue[0][1])
            return
        self._forget(key)

    def _forget(self, key: Key) -> None:
        self._queues.pop(key, None)

    def _settle(self, key: Key) -> None:
        """The worker left `key`: queue it again if it has work, else tell `ended`."""
        queue = self._queues.get(key)
        if queue and key not in self._blocked:  # it took turns, or its worker was doomed
            heapq.heappush(self._ready, (queue[0][0], key))
            self._wake(1)
            return
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

    def ended(self, partitions: set[int] | None) -> asyncio.Future[list[None]] | None:
        """A future done once no work of `partitions` (all when None) runs; None if none does.

        Blocked keys are not waited for: nothing of theirs runs any more.
        """
        loop = asyncio.get_running_loop()
        waiting = [
            self._drained.setdefault(key, loop.create_future())
            for key in self._queues
            if key not in self._blocked and (partitions is None or key[0] in partitions)
        ]
        return asyncio.gather(*waiting) if waiting else None

    def abandon(self, partitions: set[int] | None) -> int:
        """Mark the running work of `partitions` abandoned, interrupting what still can be;
        return how many jobs were marked."""
        marked = 0
        for key, worker in self._running.items():
            if partitions is None or key[0] in partitions:
                job = self._queues[key][0][1]
                if not job.abandoned:
                    job.abandoned = True
                    marked += 1
                    if job.interruptible:
                        worker.cancel()
        return marked

    def kill(self, partitions: set[int] | None) -> list[asyncio.Task[None]]:
        """Cancel the running work of `partitions` (all when None) for good; the workers on it
        end. Returns those workers, to wait for."""
        workers = []
        for key, worker in self._running.items():
            if partitions is None or key[0] in partitions:
                self._queues[key][0][1].killed = True
                self._doomed.add(worker)
                worker.cancel()
                workers.append(worker)
        return workers

    async def close(self) -> None:
        """Kill all work, end every worker (parked ones too) and wait for them."""
        self._closing = True
        self.kill(None)
        workers = list(self._workers)
        self._parked.clear()
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
