"""Delivering output records: transient failures are retried, permanent ones reported.

`producer.send` appends to a batch and returns an acknowledgement that completes when the
broker has the record (acks=all, idempotent producer); sending a command's records before
awaiting any lets concurrent commands share produce requests. A send that fails because Kafka is
unreachable, slow or electing a leader is sent again with backoff — for as long as it takes,
because the record's offset must not be committed before its outputs exist — and the worker is
not ready meanwhile. A record the broker can never take is returned to the caller, which
replaces it with something smaller or dead-letters the input.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

import structlog

from worker.kafka.ports import OutputSink, RecordRejectedError
from worker.metrics import Metrics
from worker.observability.health import Health
from worker.pipeline.outputs import OutputRecord

log = structlog.get_logger(__name__)

RETRY_BASE_SECONDS = 0.5
RETRY_MAX_SECONDS = 10.0


class Rejected(NamedTuple):
    """A record the broker refused for good, and why."""

    record: OutputRecord
    error: BaseException


class Publisher:
    """Sends output records until each is acknowledged or refused for good."""

    def __init__(
        self,
        sink: OutputSink,
        metrics: Metrics,
        health: Health,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sink = sink
        self._metrics = metrics
        self._health = health
        self._sleep = sleep
        # its own generator, seeded from the process's: a simulation that seeds it repeats exactly
        self._random = random.Random(random.getrandbits(64))  # noqa: S311 - backoff jitter

    async def deliver(self, records: Sequence[OutputRecord]) -> list[Rejected]:
        """Deliver `records`; return those the broker refused for good."""
        rejected: list[Rejected] = []
        pending = list(records)
        attempt = 0
        while pending:
            failed = await self._send(pending, rejected)
            if not failed:
                if self._health.outputs_failed:
                    # any delivery that succeeds shows Kafka takes records again, also when the
                    # delivery that failed was given up (its command interrupted or killed)
                    self._health.outputs_failing(None)
                    log.info("outputs_delivered_again", attempts=attempt + 1)
                return rejected
            attempt += 1
            record, error = failed[0]
            self._health.outputs_failing(f"{record.topic}: {error!r}")
            growth = 2.0 ** min(attempt, 30)  # a long outage must not overflow the float
            delay = self._random.uniform(0, min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * growth))
            log.warning(
                "output_delivery_failed",
                topic=record.topic,
                records=len(failed),
                error=repr(error),
                retry_in_seconds=round(delay, 2),
            )
            await self._sleep(delay)
            pending = [r for r, _ in failed]
        return rejected

    async def _send(
        self, records: list[OutputRecord], rejected: list[Rejected]
    ) -> list[tuple[OutputRecord, BaseException]]:
        """One round: send all, await all; returns the transient failures."""
        sent: list[tuple[OutputRecord, Awaitable[None]]] = []
        failed: list[tuple[OutputRecord, BaseException]] = []
        metrics = self._metrics
        started = time.perf_counter()
        for record in records:
            try:
                sent.append((record, await self._sink.send(*record)))
            except RecordRejectedError as error:
                self._refused(record, error, rejected)
            except Exception as error:  # noqa: BLE001 - the port: anything else is transient
                self._failed(record, error, failed)
        for record, ack in sent:
            try:
                await ack
            except RecordRejectedError as error:
                self._refused(record, error, rejected)
            except Exception as error:  # noqa: BLE001 - the port: anything else is transient
                self._failed(record, error, failed)
            else:
                topic = record.topic
                metrics.published(topic).inc()
                metrics.produced_in(topic).observe(time.perf_counter() - started)
                metrics.record_size(topic).observe(len(record.value or b""))
        return failed

    def _refused(self, record: OutputRecord, error: BaseException, into: list[Rejected]) -> None:
        self._metrics.produce_failed(record.topic, "rejected", _error_class(error)).inc()
        into.append(Rejected(record, error))

    def _failed(
        self,
        record: OutputRecord,
        error: BaseException,
        into: list[tuple[OutputRecord, BaseException]],
    ) -> None:
        self._metrics.produce_failed(record.topic, "transient", _error_class(error)).inc()
        into.append((record, error))


def _error_class(error: BaseException) -> str:
    """The `error` label: the Kafka client's error class behind the port's wrapper, if any."""
    return type(error.__cause__ or error).__name__
