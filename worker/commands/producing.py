"""Producing a batch of records from the command line, with a progress bar on a terminal."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import NamedTuple

from aiokafka import AIOKafkaProducer
from tqdm import tqdm

from worker.commands.kafka_errors import TOPIC_CHECK_SECONDS
from worker.kafka.connection import client_options, stop_within
from worker.settings import Settings


class Outgoing(NamedTuple):
    """One record to produce."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


async def produce_all(
    settings: Settings, topic: str, records: Sequence[Outgoing], *, quiet: bool, unit: str
) -> int:
    """Produce `records` in order (idempotent, acks from all replicas); return how many.

    A missing topic fails in seconds, naming it, instead of after the producer's long timeout.
    The bar is shown only on a terminal, so logs and pipes get no control characters.
    """
    producer = AIOKafkaProducer(
        acks="all", enable_idempotence=True, linger_ms=5, **client_options(settings)
    )
    try:
        await producer.start()
        await asyncio.wait_for(producer.partitions_for(topic), TOPIC_CHECK_SECONDS)
        bar_off = quiet or not sys.stderr.isatty()
        with tqdm(total=len(records), unit=unit, disable=bar_off, file=sys.stderr) as bar:
            acks = []
            for record in records:
                ack = await producer.send(
                    topic, value=record.value, key=record.key, headers=record.headers
                )
                ack.add_done_callback(lambda _: bar.update(1))
                acks.append(ack)
            for ack in acks:
                await ack
    finally:
        await stop_within(producer.stop(), "producer")
    return len(records)
