"""Commit positions never pass an unfinished record."""

from __future__ import annotations

from worker.pipeline.offsets import PartitionOffsets


def test_position_is_none_before_any_record() -> None:
    """Nothing consumed means nothing to commit."""
    assert PartitionOffsets().position is None


def test_position_waits_for_the_oldest_unfinished_record() -> None:
    """Out-of-order completion only advances the position over the finished prefix."""
    offsets = PartitionOffsets()
    for offset in (10, 11, 12, 13):
        offsets.consumed(offset, timestamp=float(offset))
    assert offsets.position == 10
    offsets.finished(12)
    offsets.finished(11)
    assert offsets.position == 10, "10 is still running"
    assert offsets.oldest_timestamp() == 10.0
    offsets.finished(10)
    assert offsets.position == 13
    assert offsets.outstanding == 1
    assert offsets.oldest_timestamp() == 13.0
    offsets.finished(13)
    assert offsets.position == 14
    assert offsets.outstanding == 0
    assert offsets.oldest_timestamp() is None


def test_gaps_in_offsets_are_skipped() -> None:
    """Compacted or transactional topics have offset gaps; the position jumps over them."""
    offsets = PartitionOffsets()
    offsets.consumed(5, 0.0)
    offsets.consumed(9, 0.0)
    offsets.finished(9)
    offsets.finished(5)
    assert offsets.position == 10
