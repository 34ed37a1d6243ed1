"""Waiting for the Kafka cluster at start, so a broker restart or a slow DNS record during a
deploy delays the worker instead of crash-looping it.

The worker asks the cluster for its brokers until it answers, backing off from half a second
to five, one log line per failed attempt, for at most `CONVOAI_STARTUP_TIMEOUT_SECONDS` (the
chart's startup probe allows as long). A broker that answers and refuses the worker (TLS,
credentials) ends the wait at once: no amount of waiting fixes a wrong setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import structlog
from aiokafka.errors import KafkaConnectionError, KafkaError

from worker.kafka.cluster import describe
from worker.kafka.connection import diagnose
from worker.settings import Settings

log = structlog.get_logger(__name__)

FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 5.0
UNREACHABLE = (KafkaError, OSError, ssl.SSLError, TimeoutError)


async def wait_for_cluster(settings: Settings, stop: asyncio.Event) -> bool:
    """Return True once the cluster answers, False when `stop` is set meanwhile.

    Raises `KafkaConnectionError` with the diagnosis when the timeout has passed or the broker
    refused the worker's settings.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + settings.startup_timeout_seconds
    backoff = FIRST_BACKOFF_SECONDS
    attempt = 0
    while True:
        attempt += 1
        try:
            await describe(settings)
        except UNREACHABLE as error:
            diagnosis = await diagnose(settings)
            left = deadline - loop.time()
            if diagnosis.refused or left <= 0:
                # whatever aiokafka raised last (a node never ready, say): it could not connect
                raise KafkaConnectionError(diagnosis.message) from error
            delay = min(backoff, left)
            log.warning(
                "kafka_unreachable",
                attempt=attempt,
                error=diagnosis.message,
                retry_in_seconds=round(delay, 2),
                waited_seconds=round(loop.time() - started, 1),
                timeout_seconds=settings.startup_timeout_seconds,
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()
            if stop.is_set():
                return False
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        else:
            if attempt > 1:
                log.info("kafka_reachable", attempts=attempt)
            return True
