"""Per-key FIFO, cross-key concurrency, the global bound, fair turns, abandon and kill."""

from __future__ import annotations

import asyncio

import pytest

from worker.errors import AbandonedError
from worker.pipeline.scheduler import KeyedScheduler


class Job:
    """A named job that can be marked abandoned or killed."""

    def __init__(self, name: str, *, interruptible: bool = True) -> None:
        self.name = name
        self.abandoned = False
        self.killed = False
        self.interruptible = interruptible


class Recorder:
    """A job runner that records order and concurrency, with a gate per job."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []
        self.running = 0
        self.max_running = 0
        self.gates: dict[str, asyncio.Event] = {}
        self.errors: list[BaseException] = []
        self.failed: list[str] = []

    def gate(self, job: str) -> asyncio.Event:
        return self.gates.setdefault(job, asyncio.Event())

    def on_error(self, error: BaseException, job: Job) -> None:
        self.errors.append(error)
        self.failed.append(job.name)

    def scheduler(self, limit: int) -> KeyedScheduler[Job]:
        return KeyedScheduler(limit, self, self.on_error)

    async def __call__(self, job: Job) -> None:
        self.started.append(job.name)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if job.name.startswith("boom"):
                raise RuntimeError(job.name)
            try:
                await self.gate(job.name).wait()
            except asyncio.CancelledError:
                if job.abandoned and not job.killed:  # as the processor does
                    current = asyncio.current_task()
                    assert current is not None
                    current.uncancel()
                    raise AbandonedError(job.name) from None
                raise
        finally:
            self.running -= 1
        self.finished.append(job.name)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def ended(scheduler: KeyedScheduler[Job], partitions: set[int] | None, within: float) -> bool:
    """Whether the work of `partitions` ended within `within` seconds."""
    future = scheduler.ended(partitions)
    if future is None:
        return True
    done, _ = await asyncio.wait({future}, timeout=within)
    return bool(done)


async def test_same_key_runs_in_order_other_keys_do_not_wait() -> None:
    """A blocked key holds back only its own later jobs."""
    rec = Recorder()
    scheduler = rec.scheduler(10)
    scheduler.submit((0, b"a"), Job("a1"))
    scheduler.submit((0, b"a"), Job("a2"))
    scheduler.submit((0, b"b"), Job("b1"))
    await settle()
    assert rec.started == ["a1", "b1"]
    rec.gate("b1").set()
    await settle()
    assert rec.finished == ["b1"]
    rec.gate("a1").set()
    rec.gate("a2").set()
    assert await ended(scheduler, None, 1)
    assert rec.finished == ["b1", "a1", "a2"]
    assert scheduler.active_keys == 0


async def test_global_limit_bounds_concurrency() -> None:
    """No more than `limit` jobs run at once across keys."""
    rec = Recorder()
    scheduler = rec.scheduler(3)
    for i in range(10):
        scheduler.submit((0, i), Job(f"j{i}"))
    await settle()
    assert rec.running == 3
    assert scheduler.running == 3
    for i in range(10):
        rec.gate(f"j{i}").set()
    assert await ended(scheduler, None, 1)
    assert len(rec.finished) == 10
    assert rec.max_running == 3


async def test_discard_queued_keeps_running_head() -> None:
    """Revocation drops unstarted jobs of the partition but not the running one or others."""
    rec = Recorder()
    scheduler = rec.scheduler(10)
    for job in ("p0a", "p0b", "p0c"):
        scheduler.submit((0, b"k"), Job(job))
    scheduler.submit((1, b"k"), Job("p1a"))
    scheduler.submit((1, b"k"), Job("p1b"))
    await settle()
    assert scheduler.discard_queued({0}) == 2
    for gate in ("p0a", "p1a", "p1b"):
        rec.gate(gate).set()
    assert await ended(scheduler, None, 1)
    assert sorted(rec.finished) == ["p0a", "p1a", "p1b"]


async def test_discard_queued_drops_heads_still_waiting_for_a_slot() -> None:
    """With more keys than slots, a key whose next job waits for a slot has started nothing:
    releasing its partition drops that job too, and waiting for the partition's running work
    does not wait for it, also when the slots are held by another partition."""
    rec = Recorder()
    scheduler = rec.scheduler(1)
    scheduler.submit((0, b"a"), Job("a"))
    scheduler.submit((0, b"b"), Job("b"))  # waits for the slot
    scheduler.submit((0, b"c"), Job("c1"))
    scheduler.submit((0, b"c"), Job("c2"))
    await settle()
    assert scheduler.discard_queued({0}) == 3
    rec.gate("a").set()
    assert await ended(scheduler, {0}, 1)
    await settle()
    assert rec.started == ["a"]
    assert scheduler.active_keys == 0

    scheduler.submit((1, b"x"), Job("x"))  # holds the only slot
    scheduler.submit((0, b"b"), Job("b2"))
    await settle()
    assert scheduler.discard_queued({0}) == 1
    assert await ended(scheduler, {0}, 0.05)
    assert scheduler.abandon({0}) == 0
    scheduler.submit((0, b"b"), Job("b3"))  # the partition came back: its key runs again
    rec.gate("x").set()
    rec.gate("b3").set()
    assert await ended(scheduler, None, 1)
    assert rec.finished == ["a", "x", "b3"]


async def test_wait_times_out_and_kill_unwinds() -> None:
    """Work that does not finish within the bound is killed, not recorded as finished."""
    rec = Recorder()
    scheduler = rec.scheduler(10)
    scheduler.submit((0, b"slow"), Job("slow"))
    assert not await ended(scheduler, {0}, 0.05)
    await asyncio.gather(*scheduler.kill({0}), return_exceptions=True)
    assert rec.finished == []
    assert scheduler.active_keys == 0
    assert rec.errors == []


async def test_failure_is_reported_and_stops_only_that_key() -> None:
    """An exception from the runner goes to on_error; later jobs of the key do not run."""
    rec = Recorder()
    scheduler = rec.scheduler(10)
    scheduler.submit((0, b"x"), Job("boom1"))
    scheduler.submit((0, b"x"), Job("after"))
    scheduler.submit((0, b"y"), Job("other"))
    rec.gate("other").set()
    assert await ended(scheduler, None, 1)
    assert [str(e) for e in rec.errors] == ["boom1"]
    assert rec.failed == ["boom1"]
    assert "after" not in rec.started
    assert rec.finished == ["other"]


@pytest.mark.parametrize("limit", [1, 4])
async def test_many_keys_complete(limit: int) -> None:
    """Thousands of jobs over many keys all complete, in order per key."""
    done: dict[str, list[int]] = {}

    async def run(job: Job) -> None:
        await asyncio.sleep(0)
        key, index = job.name.split(":")
        done.setdefault(key, []).append(int(index))

    rec = Recorder()
    scheduler = KeyedScheduler(limit, run, rec.on_error)
    for i in range(2000):
        scheduler.submit((0, i % 50), Job(f"{i % 50}:{i}"))
    assert await ended(scheduler, None, 5)
    assert sum(len(v) for v in done.values()) == 2000
    assert all(v == sorted(v) for v in done.values())
    assert rec.errors == []


async def test_a_failed_key_stays_blocked_for_later_jobs() -> None:
    """Jobs submitted after a key failed never run in this process; other keys do."""
    rec = Recorder()
    scheduler = rec.scheduler(10)
    scheduler.submit((0, b"x"), Job("boom"))
    await settle()
    assert rec.failed == ["boom"]
    scheduler.submit((0, b"x"), Job("later"))
    scheduler.submit((0, b"y"), Job("elsewhere"))
    rec.gate("later").set()
    rec.gate("elsewhere").set()
    assert await ended(scheduler, None, 1)
    assert rec.started == ["boom", "elsewhere"]
    assert scheduler.blocked_keys == 1
    assert scheduler.discard_queued({0}) == 2  # the failed head and the later job
    assert scheduler.blocked_keys == 0
    assert scheduler.active_keys == 0


async def test_abandon_interrupts_only_the_chosen_partitions() -> None:
    """Abandoned jobs end quietly (no error) and are not finished; other partitions go on."""
    rec = Recorder()
    scheduler = rec.scheduler(10)
    scheduler.submit((0, b"a"), Job("p0"))
    scheduler.submit((1, b"a"), Job("p1"))
    await settle()
    assert scheduler.abandon({0}) == 1
    assert await ended(scheduler, {0}, 1)
    assert rec.errors == []
    assert rec.finished == []
    assert scheduler.active_keys == 1
    rec.gate("p1").set()
    assert await ended(scheduler, None, 1)
    assert rec.finished == ["p1"]


async def test_the_oldest_waiting_record_goes_next() -> None:
    """With one slot, a key that keeps receiving work yields it between jobs to an older
    record of another key: a1, then b1 (older than a2), then a2, then c1."""
    rec = Recorder()
    scheduler = rec.scheduler(1)
    scheduler.submit((0, b"a"), Job("a1"))
    scheduler.submit((0, b"b"), Job("b1"))
    scheduler.submit((0, b"a"), Job("a2"))
    scheduler.submit((0, b"c"), Job("c1"))
    for name in ("a1", "b1", "a2", "c1"):
        rec.gate(name).set()
    assert await ended(scheduler, None, 1)
    assert rec.started == ["a1", "b1", "a2", "c1"]


async def test_a_busy_key_does_not_starve_a_waiting_one() -> None:
    """Two slots, one taken by a slow key: a key fed a new job after each one finishes does not
    keep the other slot while a third key waits."""
    rec = Recorder()
    scheduler = rec.scheduler(2)
    scheduler.submit((0, b"slow"), Job("slow"))
    scheduler.submit((0, b"busy"), Job("busy0"))
    scheduler.submit((0, b"waiting"), Job("w"))
    rec.gate("w").set()
    for n in range(1, 6):
        scheduler.submit((0, b"busy"), Job(f"busy{n}"))
        rec.gate(f"busy{n - 1}").set()
        await settle()
    assert "w" in rec.finished
    assert rec.started.index("w") <= 2  # right after busy0, not after all of busy's work


async def test_abandon_only_marks_work_that_is_no_longer_interruptible() -> None:
    """A job publishing what it did is marked, not cancelled: it finishes."""
    rec = Recorder()
    scheduler = rec.scheduler(10)
    publishing = Job("publishing", interruptible=False)
    scheduler.submit((0, b"a"), publishing)
    await settle()
    assert scheduler.abandon({0}) == 1
    assert publishing.abandoned
    assert scheduler.abandon({0}) == 0  # marked once
    rec.gate("publishing").set()
    assert await ended(scheduler, {0}, 1)
    assert rec.finished == ["publishing"]


async def test_killed_work_ends_its_worker_even_after_an_abandonment() -> None:
    """An abandoned job that turns cancellations into `AbandonedError` cannot do so once
    killed: the kill ends the worker instead of leaving it parked (and its waiters hanging)."""
    rec = Recorder()
    scheduler = rec.scheduler(10)
    job = Job("stuck", interruptible=False)
    scheduler.submit((0, b"a"), job)
    await settle()
    scheduler.abandon({0})
    workers = scheduler.kill({0})
    done, _ = await asyncio.wait(workers, timeout=1)
    assert done == set(workers)
    assert all(worker.cancelled() for worker in workers)
    assert await ended(scheduler, {0}, 1)
    assert job.killed
    assert rec.finished == []


async def test_a_worker_whose_job_swallowed_the_kill_ends_after_the_job() -> None:
    """A job that ignores the kill's cancellation finishes, and its worker then ends anyway;
    work still waiting is taken by another worker."""
    swallowed = asyncio.Event()
    release = asyncio.Event()

    async def stubborn(job: Job) -> None:
        if job.name == "stubborn":
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                current = asyncio.current_task()
                assert current is not None
                current.uncancel()
                swallowed.set()
                await release.wait()

    scheduler: KeyedScheduler[Job] = KeyedScheduler(1, stubborn, Recorder().on_error)
    scheduler.submit((0, b"a"), Job("stubborn"))
    await settle()
    (worker,) = scheduler.kill({0})
    await asyncio.wait_for(swallowed.wait(), 1)
    scheduler.submit((1, b"b"), Job("next"))
    release.set()
    await asyncio.wait_for(asyncio.wait([worker]), 1)
    assert worker.done()
    assert await ended(scheduler, None, 1)
