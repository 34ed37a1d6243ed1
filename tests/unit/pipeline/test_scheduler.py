"""Per-key FIFO, cross-key concurrency and the global bound."""

from __future__ import annotations

import asyncio

import pytest

from worker.pipeline.scheduler import KeyedScheduler


class Recorder:
    """A job runner that records order and concurrency, with a gate per job."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []
        self.running = 0
        self.max_running = 0
        self.gates: dict[str, asyncio.Event] = {}
        self.errors: list[BaseException] = []

    def gate(self, job: str) -> asyncio.Event:
        return self.gates.setdefault(job, asyncio.Event())

    async def __call__(self, job: str) -> None:
        self.started.append(job)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if job.startswith("boom"):
                raise RuntimeError(job)
            await self.gate(job).wait()
        finally:
            self.running -= 1
        self.finished.append(job)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_same_key_runs_in_order_other_keys_do_not_wait() -> None:
    """A blocked key holds back only its own later jobs."""
    rec = Recorder()
    scheduler = KeyedScheduler(10, rec, rec.errors.append)
    scheduler.submit((0, b"a"), "a1")
    scheduler.submit((0, b"a"), "a2")
    scheduler.submit((0, b"b"), "b1")
    await settle()
    assert rec.started == ["a1", "b1"]
    rec.gate("b1").set()
    await settle()
    assert rec.finished == ["b1"]
    rec.gate("a1").set()
    rec.gate("a2").set()
    assert await scheduler.wait(None, seconds=1)
    assert rec.finished == ["b1", "a1", "a2"]
    assert scheduler.active_keys == 0


async def test_global_limit_bounds_concurrency() -> None:
    """No more than `limit` jobs run at once across keys."""
    rec = Recorder()
    scheduler = KeyedScheduler(3, rec, rec.errors.append)
    for i in range(10):
        scheduler.submit((0, i), f"j{i}")
    await settle()
    assert rec.running == 3
    assert scheduler.running == 3
    for i in range(10):
        rec.gate(f"j{i}").set()
    assert await scheduler.wait(None, seconds=1)
    assert len(rec.finished) == 10
    assert rec.max_running == 3


async def test_discard_queued_keeps_running_head() -> None:
    """Revocation drops unstarted jobs of the partition but not the running one or others."""
    rec = Recorder()
    scheduler = KeyedScheduler(10, rec, rec.errors.append)
    for job in ("p0a", "p0b", "p0c"):
        scheduler.submit((0, b"k"), job)
    scheduler.submit((1, b"k"), "p1a")
    scheduler.submit((1, b"k"), "p1b")
    await settle()
    assert scheduler.discard_queued({0}) == 2
    for gate in ("p0a", "p1a", "p1b"):
        rec.gate(gate).set()
    assert await scheduler.wait(None, seconds=1)
    assert sorted(rec.finished) == ["p0a", "p1a", "p1b"]


async def test_wait_times_out_and_cancel_unwinds() -> None:
    """Work that does not finish within the bound is cancelled, not recorded as finished."""
    rec = Recorder()
    scheduler = KeyedScheduler(10, rec, rec.errors.append)
    scheduler.submit((0, b"slow"), "slow")
    assert not await scheduler.wait({0}, seconds=0.05)
    await scheduler.cancel({0})
    assert rec.finished == []
    assert scheduler.active_keys == 0
    assert rec.errors == []


async def test_failure_is_reported_and_stops_only_that_key() -> None:
    """An exception from the runner goes to on_error; later jobs of the key do not run."""
    rec = Recorder()
    scheduler = KeyedScheduler(10, rec, rec.errors.append)
    scheduler.submit((0, b"x"), "boom1")
    scheduler.submit((0, b"x"), "after")
    scheduler.submit((0, b"y"), "other")
    rec.gate("other").set()
    assert await scheduler.wait(None, seconds=1)
    assert [str(e) for e in rec.errors] == ["boom1"]
    assert "after" not in rec.started
    assert rec.finished == ["other"]


@pytest.mark.parametrize("limit", [1, 4])
async def test_many_keys_complete(limit: int) -> None:
    """Thousands of jobs over many keys all complete, in order per key."""
    done: dict[int, list[int]] = {}

    async def run(job: tuple[int, int]) -> None:
        await asyncio.sleep(0)
        done.setdefault(job[0], []).append(job[1])

    errors: list[BaseException] = []
    scheduler: KeyedScheduler[tuple[int, int]] = KeyedScheduler(limit, run, errors.append)
    for i in range(2000):
        scheduler.submit((0, i % 50), (i % 50, i))
    assert await scheduler.wait(None, seconds=5)
    assert sum(len(v) for v in done.values()) == 2000
    assert all(v == sorted(v) for v in done.values())
    assert errors == []
