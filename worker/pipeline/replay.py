"""Read assigned partitions up to the end offsets they had when reading began.

Both the agent directory (state topic) and the dedupe warm-up (results topic) rebuild memory
from a topic at startup; they must stop at a known end instead of waiting for records forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

RecordHandler = Callable[[ConsumerRecord], bool]


async def all_partitions(consumer: AIOKafkaConsumer, within: float = 30.0) -> list[TopicPartition]:
    """The partitions of a group-less consumer's subscribed topics, once it has assigned them.

    Without a group, aiokafka assigns every partition of the subscribed topics as soon as it
    has their metadata; this waits for that instead of guessing partition counts.
    """
    deadline = asyncio.get_running_loop().time() + within
    while not consumer.assignment():
        if asyncio.get_running_loop().time() > deadline:
            raise LookupError(
                f"no partitions for {sorted(consumer.subscription())} (missing topic?)"
            )
        await asyncio.sleep(0.05)
    return sorted(consumer.assignment())


async def replay_to_end(consumer: AIOKafkaConsumer, handle: RecordHandler) -> int:
    """Feed every record below the current end offsets to `handle`; return how many it took.

    The consumer must already be assigned and positioned. `handle` returns whether it used the
    record (for the count).
    """
    tps = sorted(consumer.assignment())
    end: dict[TopicPartition, int] = await consumer.end_offsets(tps) if tps else {}
    used = 0
    while await _behind(consumer, end):
        batch = await consumer.getmany(timeout_ms=500)
        for tp, records in batch.items():
            for record in records:
                if record.offset < end[tp]:
                    used += handle(record)
    return used


async def _behind(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    for tp, offset in end.items():
        if await consumer.position(tp) < offset:
            return True
    return False
