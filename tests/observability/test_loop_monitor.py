"""The loop monitor measures how late the loop runs and reports it to metrics and health."""

from __future__ import annotations

import asyncio
import time

from tests.observability.fakes import new_metrics
from worker.observability.health import Health, HealthReport
from worker.observability.loop_monitor import monitor_loop
from worker.settings import Settings

INTERVAL = 0.01
LIMIT = 0.15


class WatchedHealth(Health):
    """Health that keeps every measurement with the liveness verdict it led to."""

    def __init__(self) -> None:
        super().__init__(Settings(loop_block_seconds=LIMIT))
        self.seen: list[tuple[float, HealthReport]] = []
        self.blocked = asyncio.Event()
        self.recovered = asyncio.Event()

    def loop_lag(self, seconds: float) -> None:
        super().loop_lag(seconds)
        report = self.liveness()
        self.seen.append((seconds, report))
        if not report.ok:
            self.blocked.set()
        elif self.blocked.is_set():
            self.recovered.set()


async def test_blocking_code_shows_as_loop_lag_and_fails_liveness():
    """A callback that blocks the loop 0.3 s is measured; liveness fails, then recovers."""
    metrics, health = new_metrics(), WatchedHealth()
    task = asyncio.create_task(monitor_loop(metrics, health, interval=INTERVAL))
    try:
        await asyncio.sleep(INTERVAL * 3)
        assert health.seen
        assert all(report.ok for _, report in health.seen)
        asyncio.get_running_loop().call_soon(time.sleep, 0.3)  # blocking code on the loop
        await asyncio.wait_for(health.blocked.wait(), 2)
        lag, report = health.seen[-1]
        assert lag > LIMIT
        assert metrics.registry.get_sample_value("convoai_event_loop_lag_seconds") == lag
        assert report.reason.startswith("event loop blocked: lagged 0.")
        await asyncio.wait_for(health.recovered.wait(), 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


async def test_a_stopped_monitor_makes_liveness_fail():
    """Without measurements for longer than the limit the loop counts as blocked."""
    metrics, health = new_metrics(), Health(Settings(loop_block_seconds=LIMIT))
    task = asyncio.create_task(monitor_loop(metrics, health, interval=INTERVAL))
    await asyncio.sleep(INTERVAL * 3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert health.liveness().ok
    await asyncio.sleep(LIMIT * 1.5)
    assert health.liveness().reason.startswith("event loop blocked: no measurement for")
