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


def test_offsets_finished_by_a_previous_owner_are_not_run() -> None:
    """Offsets from the committed offset map complete as they are consumed."""
    offsets = PartitionOffsets(position=100, finished={102, 103})
    assert offsets.finished_above == {102, 103}
    assert offsets.consumed(100, 0.0)
    assert offsets.consumed(101, 0.0)
    assert not offsets.consumed(102, 0.0)
    assert not offsets.consumed(103, 0.0)
    assert offsets.position == 100
    offsets.finished(101)
    assert offsets.finished_above == {101, 102, 103}
    offsets.finished(100)
    assert offsets.position == 104
    assert offsets.finished_above == set()


def test_finished_offsets_not_yet_consumed_stay_in_the_map() -> None:
    """A partition released before reaching the inherited offsets hands them on again."""
    offsets = PartitionOffsets(position=10, finished={50, 60})
    offsets.consumed(10, 0.0)
    offsets.finished(10)
    assert offsets.position == 11
    assert offsets.finished_above == {50, 60}


def test_an_idle_partition_commits_the_consumer_position() -> None:
    """With nothing pending the position moves to the consumer's, past transaction markers."""
    offsets = PartitionOffsets()
    offsets.consumed(7, 0.0)
    offsets.finished(7)
    offsets.skip_to(9)  # offset 8 was a commit marker
    assert offsets.position == 9
    offsets.consumed(9, 0.0)
    offsets.skip_to(12)  # not idle: ignored
    assert offsets.position == 9
    offsets.skip_to(5)  # never backwards
    offsets.finished(9)
    assert offsets.position == 10
