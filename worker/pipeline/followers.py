"""Memory rebuilt from a topic: the agent directory and the dedupe memory.

Both read a whole topic without a consumer group, so every replica sees every record. At
startup `load` reads up to the end offsets of that moment. Then they differ:

- the compacted agent-state topic is followed (`follow`) as it grows: which agent a name points
  at must be current on every member at every moment;
- the results topic is only caught up (`catch_up`) when this member is assigned partitions: a
  member that takes over a partition must know the commands another member just finished
  before it decides to run them, and in between it knows its own. Reading every result of the
  group all the time would cost each member CPU for every command the group runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from worker.kafka.ports import Record, TopicReader

POLL_SECONDS = 1.0
RETRY_BASE_SECONDS = 0.5  # a failed read is tried again after this, doubling ...
RETRY_MAX_SECONDS = 5.0  # ... up to this

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
        self._lock = asyncio.Lock()

    async def load(self, start_at: StartAt = from_beginning, *, within: float = 60.0) -> int:
        """Read from `start_at` up to the current end; return how many records were used.

        Reads that fail are tried again for up to `within` seconds (a broker restarting while
        the worker starts), then the failure is raised.
        """
        self._partitions = await self._reader.start()
        first, end = await self._reader.offsets()
        for partition, offset in start_at(first, end).items():
            self._reader.seek(partition, offset)
        return await self._read_to(end, asyncio.get_running_loop().time() + within)

    async def follow(self) -> None:
        """Apply new records until cancelled."""
        while True:
            for record in await self._reader.poll(POLL_SECONDS):
                self._apply(record)

    async def catch_up(self, start_at: StartAt, within: float) -> bool:
        """Apply what was added since the last read, up to the end of now; False on timeout.

        A partition further behind than `start_at` allows is skipped forward to it, so a catch
        up never reads more than `load` with the same `start_at` would.
        """
        async with self._lock:
            first, end = await self._reader.offsets()
            for partition, offset in start_at(first, end).items():
                if await self._reader.position(partition) < offset:
                    self._reader.seek(partition, offset)
            deadline = asyncio.get_running_loop().time() + within
            try:
                async with asyncio.timeout(within):
                    await self._read_to(end, deadline)
            except TimeoutError:
                return False
            return True

    async def _read_to(self, end: Mapping[int, int], deadline: float) -> int:
        loop = asyncio.get_running_loop()
        used = 0
        failures = 0
        while not await self._reached(end):
            try:
                records = await self._reader.poll(POLL_SECONDS)
            except Exception:
                failures += 1
                pause = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** (failures - 1))
                if loop.time() + pause >= deadline:
                    raise
                await asyncio.sleep(pause)
                continue
            for record in records:
                # records past `end` are applied too (the reader moved on), just not counted
                used += self._apply(record) and record.offset < end[record.partition]
        return used

    async def close(self) -> None:
        """Disconnect the reader."""
        await self._reader.close()

    async def _reached(self, end: Mapping[int, int]) -> bool:
        for partition in self._partitions:
            if await self._reader.position(partition) < end.get(partition, 0):
                return False
        return True
