"""Measure how late the event loop runs a timer: the symptom of blocking code or CPU starvation."""

from __future__ import annotations

import asyncio

from worker.metrics import Metrics
from worker.observability.health import Health

INTERVAL_SECONDS = 0.5


async def monitor_loop(
    metrics: Metrics, health: Health, interval: float = INTERVAL_SECONDS
) -> None:
    """Forever: sleep `interval`, report how much later than asked the loop woke us up."""
    loop = asyncio.get_running_loop()
    while True:
        expected = loop.time() + interval
        await asyncio.sleep(interval)
        lag = max(0.0, loop.time() - expected)
        metrics.loop_lag.set(lag)
        health.loop_lag(lag)
