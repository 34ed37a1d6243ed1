"""Which records of one partition are finished, and what may be committed.

Commands of one partition finish out of order (different keys run concurrently), but Kafka
commits a single position per partition: one past the highest offset below which every consumed
record is finished (its outputs acknowledged by Kafka). The finished offsets above that position
are kept too; they go into the commit's offset map (`worker.pipeline.offset_map`), and offsets a
previous owner finished arrive the same way, so they are skipped instead of run again.

It also counts the bytes of the records it holds, which is what bounds the worker's memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class PartitionOffsets:
    """Consumed-but-uncommittable offsets of one partition, in consumption order."""

    __slots__ = ("_bytes", "_done", "_pending", "_position", "_sizes", "_timestamps", "version")

    def __init__(self, position: int | None = None, finished: Iterable[int] = ()) -> None:
        """Start at a committed `position` with offsets above it already `finished`."""
        self._pending: deque[int] = deque()
        self._timestamps: deque[float] = deque()
        self._sizes: deque[int] = deque()
        self._bytes = 0
        self._done: set[int] = set(finished)
        self._position = position  # next offset to commit; None until known
        self.version = 0  # changes whenever what a commit would carry may have changed

    def consumed(self, offset: int, timestamp: float, size: int = 0) -> bool:
        """Register a record (of `size` bytes) handed over by the consumer; False when it is
        already finished.

        Offsets arrive in increasing order. A record finished before (by the previous owner of
        the partition) is registered and completed at once: it must not run again.
        """
        if self._position is None:
            self._position = offset
        self._pending.append(offset)
        self._timestamps.append(timestamp)
        self._sizes.append(size)
        self._bytes += size
        if offset in self._done:
            self._advance()
            return False
        return True

    def finished(self, offset: int) -> None:
        """Mark a record finished and advance the commit position over the finished prefix."""
        self._done.add(offset)
        self.version += 1
        self._advance()

    def _advance(self) -> None:
        pending, done = self._pending, self._done
        while pending and pending[0] in done:
            head = pending.popleft()
            self._timestamps.popleft()
            self._bytes -= self._sizes.popleft()
            done.discard(head)
            self._position = head + 1
            self.version += 1

    def skip_to(self, position: int) -> None:
        """Nothing is pending: commit `position` (the consumer's, past transaction markers)."""
        if not self._pending and (self._position is None or position > self._position):
            self._position = position
            self._done = {offset for offset in self._done if offset >= position}
            self.version += 1

    @property
    def position(self) -> int | None:
        """The offset to commit (next record to read after a restart), None before any."""
        return self._position

    @property
    def finished_above(self) -> set[int]:
        """Finished offsets above the position: the content of the offset map."""
        return self._done

    @property
    def outstanding(self) -> int:
        """Records consumed and not yet below the commit position (the count bound)."""
        return len(self._pending)

    @property
    def outstanding_bytes(self) -> int:
        """Bytes of those records (the memory bound)."""
        return self._bytes

    @property
    def idle(self) -> bool:
        """Nothing consumed is unfinished."""
        return not self._pending

    def oldest_timestamp(self) -> float | None:
        """Timestamp (seconds) of the oldest unfinished record, for the lag-in-seconds metric."""
        return self._timestamps[0] if self._timestamps else None
