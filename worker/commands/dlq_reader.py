"""Reading the dead-letter topic from a point in time up to its end at the time of the call."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from worker.commands import dead_letters
from worker.commands.dead_letters import DeadLetter
from worker.commands.exit_codes import CommandLineError
from worker.kafka.aio import all_partitions
from worker.kafka.connection import client_options, stop_within
from worker.settings import Settings

POLL_MS = 500


async def read_dead_letters(
    settings: Settings,
    topic: str,
    *,
    since: datetime | None,
    keep: Callable[[DeadLetter], bool],
) -> list[DeadLetter]:
    """The dead letters on `topic` written at or after `since` that `keep` accepts, oldest
    first. Records written after the call started are not read, so the read always ends."""
    consumer = AIOKafkaConsumer(
        topic, group_id=None, enable_auto_commit=False, **client_options(settings)
    )
    try:
        await consumer.start()
        partitions = await _partitions(consumer, topic)
        end = await consumer.end_offsets(partitions)
        await _seek(consumer, partitions, since)
        letters: list[DeadLetter] = []
        while not await _reached(consumer, end):
            batch = await consumer.getmany(*partitions, timeout_ms=POLL_MS)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < end[tp]:
                        letter = dead_letters.parse(record)
                        if keep(letter):
                            letters.append(letter)
    finally:
        await stop_within(consumer.stop(), "reader")
    return sorted(
        letters, key=lambda letter: (letter.timestamp_ms, letter.partition, letter.offset)
    )


async def _reached(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    for tp, offset in end.items():
        if await consumer.position(tp) < offset:
            return False
    return True


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    if topic not in await consumer.topics():
        raise CommandLineError(
            f"the dead-letter topic {topic} does not exist on the broker (CONVOAI_TOPIC_DLQ)"
        )
    return await all_partitions(consumer)


async def _seek(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], since: datetime | None
) -> None:
    if since is None:
        await consumer.seek_to_beginning(*partitions)
        return
    found = await consumer.offsets_for_times(
        {tp: int(since.timestamp() * 1000) for tp in partitions}
    )
    end = await consumer.end_offsets(partitions)
    for tp in partitions:
        at = found.get(tp)
        consumer.seek(tp, at.offset if at is not None else end[tp])
