"""Committing finished work: the contiguous position plus the offset map, never backwards.

Commits are serialized: the periodic commit and the commit of a release never overlap, so a
slow or retried periodic commit cannot land after (and below) the release's. Within one
assignment of a partition the committed position only grows, and a committed map is never
replaced by a smaller one at the same position: when the finished offsets outgrow the metadata
budget, the commit waits for the position to advance and then carries the lowest offsets that
fit. Each commit is bounded by the commit deadline; one that runs out is retried by the next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import structlog

from worker.kafka.ports import (
    CommandSource,
    CommitRejectedError,
    Committed,
    MetadataTooLargeError,
)
from worker.metrics import Metrics
from worker.pipeline import offset_map
from worker.pipeline.offsets import PartitionOffsets

log = structlog.get_logger(__name__)


class EncodedMap(NamedTuple):
    """A partition's offset map as last encoded, reused while nothing changed."""

    position: int
    version: int
    metadata: str
    complete: bool  # False: only the lowest offsets fitted


@dataclass(eq=False)
class PartitionState:
    """One assigned partition: its offsets, holds and commit state.

    A new object per assignment: work of an earlier assignment recognises that its partition
    state is gone and does not touch the new one.
    """

    partition: int
    offsets: PartitionOffsets = field(default_factory=PartitionOffsets)
    committed: Committed | None = None
    holds: set[str] = field(default_factory=set)  # why it is paused; empty: fetching
    phase: str = "opening"  # opening → running → releasing → released
    encoded: EncodedMap | None = None

    @property
    def running(self) -> bool:
        """Open and not being released: its records are dispatched and committed."""
        return self.phase == "running"


class Committer:
    """Commits partitions' finished positions with their offset maps."""

    def __init__(
        self, source: CommandSource, metrics: Metrics, metadata_budget: int, deadline: float
    ) -> None:
        self._source = source
        self._metrics = metrics
        self.budget = metadata_budget
        self._deadline = deadline
        self._lock = asyncio.Lock()

    async def commit(self, states: Iterable[PartitionState]) -> bool:
        """Commit what changed; False when the commit failed or ran out of time (it is logged
        and counted)."""
        chosen = {state.partition: state for state in states}
        try:
            async with asyncio.timeout(self._deadline):
                async with self._lock:
                    return await self._commit(chosen)
        except TimeoutError as error:
            return self._failed(sorted(chosen), error)

    async def _commit(self, chosen: dict[int, PartitionState]) -> bool:
        offsets = {p: c for p, s in chosen.items() if (c := self._next(s)) is not None}
        if not offsets:
            return True
        try:
            await self._source.commit(offsets)
        except MetadataTooLargeError as error:
            log.warning("offset_map_refused", error=str(error), budget_bytes=self.budget)
            self.budget = 0  # this broker takes less: commit plain positions from now on
            offsets = {p: Committed(c.offset) for p, c in offsets.items()}
            try:
                await self._source.commit(offsets)
            except Exception as again:  # noqa: BLE001 - logged and counted; the next commit retries
                return self._failed(sorted(offsets), again)
        except CommitRejectedError as error:
            return self._failed(sorted(offsets), error)
        except Exception as error:  # noqa: BLE001 - the port: anything else is transient
            return self._failed(sorted(offsets), error)
        self._metrics.commits.labels("ok").inc()
        for partition, committed in offsets.items():
            chosen[partition].committed = committed
        return True

    def _next(self, state: PartitionState) -> Committed | None:
        """What to commit for `state`; None when nothing changed, it would go backwards, or
        it would replace the committed map with a smaller one at the same position."""
        position = state.offsets.position
        if position is None:
            return None
        committed = state.committed
        if committed is not None and position < committed.offset:
            return None
        encoded = self.encoded(state, position)
        if not encoded.complete and committed is not None and committed.offset == position:
            return None
        candidate = Committed(position, encoded.metadata)
        return None if candidate == committed else candidate

    def encoded(self, state: PartitionState, position: int) -> EncodedMap:
        """`state`'s offset map at `position`, encoded again only when something changed."""
        offsets = state.offsets
        cached = state.encoded
        if cached is not None and (cached.position, cached.version) == (position, offsets.version):
            return cached
        metadata = offset_map.encode(position, offsets.finished_above, self.budget)
        complete = metadata is not None
        if metadata is None:
            metadata = offset_map.encode_lowest(position, offsets.finished_above, self.budget)
            if cached is None or cached.complete:
                self._metrics.offset_map_overflows.inc()  # one event, however long it lasts
                log.warning(
                    "offset_map_overflow",
                    partition=state.partition,
                    finished_above=len(offsets.finished_above),
                    budget_bytes=self.budget,
                )
        state.encoded = EncodedMap(position, offsets.version, metadata, complete)
        return state.encoded

    def _failed(self, partitions: list[int], error: BaseException) -> bool:
        self._metrics.commits.labels("failed").inc()
        log.warning("commit_failed", error=repr(error), partitions=partitions)
        return False
