"""How late the event loop runs a timer: the symptom of blocking code or CPU starvation.

A blocked loop cannot answer /livez at all (the kubelet probe then times out); what this
measures is the partial case, a loop that still turns but late. `Health` also treats a silent
monitor as blocked, so a monitor that died does not leave the worker looking healthy.
"""

from __future__ import annotations

import asyncio

from worker.metrics import Metrics
from worker.observability.health import Health

INTERVAL_SECONDS = 0.5  # twice a second: cheap, and fine-grained next to a seconds-scale limit


async def monitor_loop(
    metrics: Metrics, health: Health, interval: float = INTERVAL_SECONDS
) -> None:
    """Until cancelled: sleep `interval`, then report how much later than due the loop woke us."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        lag = max(0.0, loop.time() - due)
        metrics.loop_lag.set(lag)
        health.loop_lag(lag)
