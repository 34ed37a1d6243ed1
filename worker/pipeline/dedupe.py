"""Command ids that already have a final result, so redelivered commands are not executed again.

Kafka redelivers a command whose offset was not committed: after a crash, a rebalance, or a
producer retry that wrote it twice. The worker remembers the ids of the last `capacity` completed
commands (an LRU set in memory) and, at startup, refills it from the tail of the results topic,
which is where a completed command's id is durably recorded. Guarantee: a command is not
executed twice when its result is among the last `capacity` results read back at startup or
completed since by this process. Commands whose API call ran but whose result was not yet
acknowledged when the worker died are executed again (at most the in-flight bound).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import TypeVar

import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from worker.pipeline.replay import all_partitions, replay_to_end
from worker.settings import Settings

K = TypeVar("K")


class CompletedCommands:
    """Bounded LRU set of command ids with a final result."""

    __slots__ = ("_capacity", "_ids")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, command_id: str) -> bool:
        return command_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, command_id: str) -> None:
        """Remember `command_id`, evicting the oldest id beyond capacity."""
        ids = self._ids
        ids[command_id] = None
        ids.move_to_end(command_id)
        if len(ids) > self._capacity:
            ids.popitem(last=False)


def share_budget(available: Mapping[K, int], budget: int) -> dict[K, int]:
    """Split `budget` records over partitions holding `available` records each.

    Partitions with fewer records than an even share give the rest to the others, so the whole
    budget is used whenever the topic holds that many records.
    """
    shares: dict[K, int] = {}
    remaining = budget
    ordered = sorted(available.items(), key=lambda item: item[1])
    for index, (key, count) in enumerate(ordered):
        share = min(count, remaining // (len(ordered) - index))
        shares[key] = share
        remaining -= share
    return shares


class _ResultId(msgspec.Struct):
    """The one field of a result event that dedupe needs; decoding only it keeps warm-up cheap."""

    command_id: str


async def warm_from_results(settings: Settings, completed: CompletedCommands) -> int:
    """Fill `completed` from the tail of the results topic; return how many ids were read.

    Reads the newest `dedupe_capacity` records at most, shared over the partitions.
    """
    consumer = AIOKafkaConsumer(
        settings.topic_results,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id=f"{settings.group_id}-dedupe-warmup",
    )
    await consumer.start()
    try:
        tps = await all_partitions(consumer)
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        available = {tp: end[tp] - begin[tp] for tp in tps}
        for tp, count in share_budget(available, settings.dedupe_capacity).items():
            consumer.seek(tp, end[tp] - count)
        decoder = msgspec.json.Decoder(_ResultId)

        def remember(record: ConsumerRecord) -> bool:
            try:
                completed.add(decoder.decode(record.value).command_id)
            except (msgspec.DecodeError, TypeError):
                return False  # not a result event; nothing to remember
            return True

        return await replay_to_end(consumer, remember)
    finally:
        await consumer.stop()
