"""Committing finished work: the contiguous position plus the offset map, never backwards.

Commits are serialized: the periodic commit and the commit of a revocation never overlap, so a
slow or retried periodic commit cannot land after (and below) the revocation's. Within one
assignment of a partition the committed position only grows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

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


@dataclass(eq=False)
class PartitionState:
    """One assigned partition: its offsets, back-pressure and commit state.

    A new object per assignment: work of an earlier assignment recognises that its partition
    state is gone and does not touch the new one.
    """

    partition: int
    offsets: PartitionOffsets
    committed: Committed | None = None
    paused: bool = False
    released: bool = False


class Committer:
    """Commits partitions' finished positions with their offset maps."""

    def __init__(self, source: CommandSource, metrics: Metrics, metadata_budget: int) -> None:
        self._source = source
        self._metrics = metrics
        self._budget = metadata_budget
        self._lock = asyncio.Lock()

    async def commit(self, states: Iterable[PartitionState]) -> bool:
        """Commit what changed; False when the commit failed (it is logged and counted)."""
        async with self._lock:
            chosen = {state.partition: state for state in states}
            offsets = {p: c for p, s in chosen.items() if (c := self._next(s)) is not None}
            if not offsets:
                return True
            try:
                await self._source.commit(offsets)
            except MetadataTooLargeError as error:
                log.warning("offset_map_refused", error=str(error), budget_bytes=self._budget)
                self._budget = 0  # this broker takes less: commit plain positions from now on
                offsets = {p: Committed(c.offset) for p, c in offsets.items()}
                return await self._send(chosen, offsets)
            except CommitRejectedError as error:
                return self._failed(offsets, error)
            except Exception as error:  # noqa: BLE001 - the port: anything else is transient
                return self._failed(offsets, error)
            return self._done(chosen, offsets)

    async def _send(self, states: dict[int, PartitionState], offsets: dict[int, Committed]) -> bool:
        try:
            await self._source.commit(offsets)
        except Exception as error:  # noqa: BLE001 - logged and counted; the next commit retries
            return self._failed(offsets, error)
        return self._done(states, offsets)

    def _next(self, state: PartitionState) -> Committed | None:
        """What to commit for `state`; None when nothing changed (or it would go backwards)."""
        position = state.offsets.position
        if position is None:
            return None
        committed = state.committed
        if committed is not None and position < committed.offset:
            return None
        metadata = offset_map.encode(position, state.offsets.finished_above, self._budget)
        if metadata is None:
            self._metrics.offset_map_overflows.inc()
            metadata = ""
        candidate = Committed(position, metadata)
        return None if candidate == committed else candidate

    def _done(self, states: dict[int, PartitionState], offsets: dict[int, Committed]) -> bool:
        self._metrics.commits.labels("ok").inc()
        for partition, committed in offsets.items():
            states[partition].committed = committed
        return True

    def _failed(self, offsets: dict[int, Committed], error: BaseException) -> bool:
        self._metrics.commits.labels("failed").inc()
        log.warning("commit_failed", error=repr(error), partitions=sorted(offsets))
        return False
