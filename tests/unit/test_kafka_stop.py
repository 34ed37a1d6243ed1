"""Stopping a Kafka client ends: within its bound, and also when the client cancels itself.

aiokafka's consumer `stop()` cancels its pending fetch requests and awaits them; one waiting out
the retry backoff after a dropped connection re-raises the cancellation out of `stop()`. On the
real broker that ended a graceful shutdown with exit code 1 about once in twelve stops while
connections were being dropped (expiring OAUTHBEARER tokens).
"""

from __future__ import annotations

import asyncio

import pytest

from tests.logs import captured_logs
from worker.kafka import connection
from worker.kafka.connection import stop_within


async def cancel_own_request() -> None:
    """End with the cancellation of a task this coroutine started and cancelled itself: what
    aiokafka's Fetcher.close does with a request sleeping out its backoff."""
    request = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)  # the request is waiting
    request.cancel()
    await request


async def test_a_cancellation_the_client_raises_on_itself_is_logged_and_the_stop_ends() -> None:
    with captured_logs(connection) as logs:
        await stop_within(cancel_own_request(), "consumer")
    assert [(line["event"], line["client"]) for line in logs] == [
        ("kafka_client_stop_cancelled", "consumer")
    ]


async def test_cancelling_the_caller_while_it_stops_a_client_still_cancels_it() -> None:
    stopping = asyncio.Event()

    async def slow_stop() -> None:
        stopping.set()
        await asyncio.sleep(3600)

    caller = asyncio.create_task(stop_within(slow_stop(), "producer"))
    await stopping.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller


async def test_a_stop_that_overruns_its_bound_is_abandoned_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(connection, "STOP_SECONDS", 0.05)
    with captured_logs(connection) as logs:
        await stop_within(asyncio.sleep(3600), "admin")
    assert [(line["event"], line["client"]) for line in logs] == [
        ("kafka_client_stop_slow", "admin")
    ]
