"""Memory rebuilt from a topic and kept current: the agent directory and the dedupe memory.

Both follow a whole topic without a consumer group, so every replica sees every record: the
compacted agent-state topic (which agent a name points at) and the results topic (which command
ids are done, whoever ran them). At startup `load` reads up to the end offsets of that moment;
`follow` then applies new records until cancelled. `caught_up` waits until everything on the
topic at the time of the call has been applied: a member that takes over a partition uses it so
that commands another member just finished are known before it decides to run them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from worker.kafka.ports import Record, TopicReader

POLL_SECONDS = 1.0

StartAt = Callable[[Mapping[int, int], Mapping[int, int]], dict[int, int]]
"""(first offsets, end offsets) → the offset to start reading each partition at."""


def from_beginning(first: Mapping[int, int], end: Mapping[int, int]) -> dict[int, int]:
    """Read everything still on the topic."""
    del end
    return dict(first)


class TopicFollower:
    """Applies every record of one topic, from a chosen start, to an in-memory view."""

    def __init__(self, reader: TopicReader, apply: Callable[[Record], bool]) -> None:
        """`apply` returns whether it used the record (for the count `load` returns)."""
        self._reader = reader
        self._apply = apply
        self._partitions: list[int] = []
        self._polled = asyncio.Event()  # set after every poll of `follow`

    async def load(self, start_at: StartAt = from_beginning) -> int:
        """Read from `start_at` up to the current end; return how many records were used."""
        self._partitions = await self._reader.start()
        first, end = await self._reader.offsets()
        for partition, offset in start_at(first, end).items():
            self._reader.seek(partition, offset)
        used = 0
        while not await self._reached(end):
            for record in await self._reader.poll(POLL_SECONDS):
                # records past `end` are applied too (the reader moved on), just not counted
                used += self._apply(record) and record.offset < end[record.partition]
        return used

    async def follow(self) -> None:
        """Apply new records until cancelled."""
        while True:
            for record in await self._reader.poll(POLL_SECONDS):
                self._apply(record)
            self._polled.set()
            self._polled = asyncio.Event()

    async def caught_up(self, within: float) -> bool:
        """Wait until records on the topic now are applied (by `follow`); False on timeout."""
        _, end = await self._reader.offsets()
        try:
            async with asyncio.timeout(within):
                while not await self._reached(end):
                    await self._polled.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Disconnect the reader."""
        await self._reader.close()

    async def _reached(self, end: Mapping[int, int]) -> bool:
        for partition in self._partitions:
            if await self._reader.position(partition) < end.get(partition, 0):
                return False
        return True
