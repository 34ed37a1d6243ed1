"""Which offset of a partition may be committed.

Commands of one partition finish out of order (different keys run concurrently), but Kafka
commits a single position per partition. The commit position is therefore one past the highest
offset below which *every* consumed record has finished — its result acknowledged by Kafka.
Committing further would lose the unfinished records on a restart.
"""

from __future__ import annotations

from collections import deque


class PartitionOffsets:
    """Consumed-but-unfinished offsets of one partition, in consumption order."""

    __slots__ = ("_done", "_pending", "_position", "_timestamps")

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._timestamps: deque[float] = deque()
        self._done: set[int] = set()
        self._position: int | None = None  # next offset to commit; None until the first record

    def consumed(self, offset: int, timestamp: float) -> None:
        """Register a record handed to the scheduler (offsets arrive in increasing order)."""
        if self._position is None:
            self._position = offset
        self._pending.append(offset)
        self._timestamps.append(timestamp)

    def finished(self, offset: int) -> None:
        """Mark a record as finished and advance the commit position over the finished prefix."""
        self._done.add(offset)
        pending, done = self._pending, self._done
        while pending and pending[0] in done:
            head = pending.popleft()
            self._timestamps.popleft()
            done.discard(head)
            self._position = head + 1

    @property
    def position(self) -> int | None:
        """The offset to commit (next record to read after a restart), None before any record."""
        return self._position

    @property
    def outstanding(self) -> int:
        """Records consumed and not yet committed-eligible (buffered, running or out of order)."""
        return len(self._pending)

    def oldest_timestamp(self) -> float | None:
        """Timestamp (seconds) of the oldest unfinished record, for the lag-in-seconds metric."""
        return self._timestamps[0] if self._timestamps else None
