"""Commits carry the offset map, are serialized, and never go backwards."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping

from prometheus_client import CollectorRegistry

from worker.kafka.memory import InMemoryBroker, MemoryCommandSource
from worker.kafka.ports import CommitRejectedError, Committed, MetadataTooLargeError
from worker.metrics import Metrics
from worker.pipeline import offset_map
from worker.pipeline.committer import Committer, PartitionState
from worker.pipeline.offsets import PartitionOffsets

TOPIC = "commands"
DEADLINE = 5.0


class RecordingSource(MemoryCommandSource):
    """A group member whose first commit waits for a gate and whose commits are recorded."""

    def __init__(self, broker: InMemoryBroker) -> None:
        super().__init__(broker, TOPIC, "group")
        self.sent: list[dict[int, Committed]] = []
        self.gate: asyncio.Event | None = None
        self.refuse_metadata = False
        self.failures: list[Exception] = []  # raised by the next commits, in order

    async def commit(self, offsets: Mapping[int, Committed]) -> None:
        gate, self.gate = self.gate, None
        if gate is not None:
            await gate.wait()
        if self.refuse_metadata and any(c.metadata for c in offsets.values()):
            raise MetadataTooLargeError("OFFSET_METADATA_TOO_LARGE")
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(dict(offsets))


def state(partition: int, consumed: range, finished: set[int]) -> PartitionState:
    offsets = PartitionOffsets()
    for offset in consumed:
        offsets.consumed(offset, 0.0)
    for offset in finished:
        offsets.finished(offset)
    return PartitionState(partition, offsets)


async def member() -> tuple[RecordingSource, Metrics]:
    broker = InMemoryBroker()
    broker.create_topic(TOPIC, 2)
    source = RecordingSource(broker)
    source.owned = {0, 1}
    return source, Metrics(CollectorRegistry())


async def test_commits_carry_the_finished_offsets_above_the_position() -> None:
    """Position 1 with 3 and 4 finished above it: the metadata is their offset map."""
    source, metrics = await member()
    one = state(0, range(5), {0, 3, 4})
    assert await Committer(source, metrics, 4096, DEADLINE).commit([one])
    (sent,) = source.sent
    assert sent[0].offset == 1
    assert offset_map.decode(1, sent[0].metadata) == {3, 4}
    assert one.committed == sent[0]
    assert await Committer(source, metrics, 4096, DEADLINE).commit([one])
    assert len(source.sent) == 1  # nothing changed, nothing sent


async def test_a_slow_commit_never_lands_after_a_newer_one() -> None:
    """A revocation's commit waits for a periodic commit in flight, then commits past it."""
    source, metrics = await member()
    committer = Committer(source, metrics, 4096, DEADLINE)
    one = state(0, range(10), {0, 1, 2})
    gate = source.gate = asyncio.Event()
    periodic = asyncio.create_task(committer.commit([one]))
    await asyncio.sleep(0)
    for offset in range(3, 10):
        one.offsets.finished(offset)
    revocation = asyncio.create_task(committer.commit([one]))
    await asyncio.sleep(0.01)
    assert source.sent == []  # both wait for the first
    gate.set()
    assert await periodic
    assert await revocation
    assert [sent[0].offset for sent in source.sent] == [3, 10]


async def test_the_position_never_goes_backwards() -> None:
    """A state behind what was committed for it commits nothing."""
    source, metrics = await member()
    behind = state(0, range(3), {0})
    behind.committed = Committed(5)
    assert await Committer(source, metrics, 4096, DEADLINE).commit([behind])
    assert source.sent == []


async def test_an_overflowing_map_keeps_its_lowest_offsets_and_never_erases_a_committed_one() -> (
    None
):
    """A map over budget commits the lowest finished offsets that fit, counted once however
    long it lasts; at the same position the committed map is left alone rather than replaced
    by one that fits less."""
    source, metrics = await member()
    rng = random.Random(3)
    finished = {o for o in range(1, 40_000) if rng.random() < 0.5}
    scattered = state(0, range(40_000), finished)
    committer = Committer(source, metrics, 200, DEADLINE)
    assert await committer.commit([scattered])
    (sent,) = source.sent
    kept = offset_map.decode(0, sent[0].metadata)
    assert len(sent[0].metadata) <= 200
    assert kept
    assert kept == {o for o in finished if o <= max(kept)}  # the lowest ones, none skipped
    assert metrics.offset_map_overflows._value.get() == 1
    gap = min(o for o in range(2, max(kept)) if o not in finished)
    scattered.offsets.finished(gap)  # the map changes below what it kept ...
    assert await committer.commit([scattered])
    assert len(source.sent) == 1  # ... but at the same position the committed map stays
    assert metrics.offset_map_overflows._value.get() == 1  # one event, not one per commit
    scattered.offsets.finished(0)
    assert await committer.commit([scattered])
    done = finished | {0, gap}
    assert source.sent[-1][0].offset == min(o for o in range(40_000) if o not in done)


async def test_a_stricter_broker_gets_plain_positions() -> None:
    """Metadata the broker refuses: the plain position is committed, now and from then on."""
    source, metrics = await member()
    source.refuse_metadata = True
    committer = Committer(source, metrics, 4096, DEADLINE)
    other = state(1, range(4), {0, 2})
    assert await committer.commit([other])
    assert source.sent[-1] == {1: Committed(1, "")}
    assert other.committed == Committed(1, "")
    assert committer.budget == 0


async def test_an_unchanged_map_is_not_encoded_again() -> None:
    """Commits of a partition where nothing changed reuse the encoded map."""
    source, metrics = await member()
    committer = Committer(source, metrics, 4096, DEADLINE)
    one = state(0, range(100), {0, *range(2, 100, 2)})
    assert await committer.commit([one])
    first = one.encoded
    assert await committer.commit([one])
    assert one.encoded is first
    one.offsets.finished(3)
    assert await committer.commit([one])
    assert one.encoded is not first


async def test_a_commit_that_hangs_ends_at_its_deadline() -> None:
    """A commit the broker does not answer fails at the commit deadline and releases the lock
    for the next one."""
    source, metrics = await member()
    committer = Committer(source, metrics, 4096, 0.05)
    one = state(0, range(3), {0, 1})
    source.gate = asyncio.Event()  # never set
    assert not await committer.commit([one])
    assert await committer.commit([one])
    assert source.sent == [{0: Committed(2, "")}]


async def test_a_failed_commit_is_counted_and_sent_again_by_the_next_one() -> None:
    """A rejected or failing commit leaves the partition uncommitted and counts `failed`; the
    next commit sends the same position again. Also when the plain position that replaces a
    refused offset map fails."""
    source, metrics = await member()
    committer = Committer(source, metrics, 4096, DEADLINE)
    failed = metrics.commits.labels("failed")
    one = state(0, range(3), {0, 1})
    source.failures = [CommitRejectedError("REBALANCE_IN_PROGRESS"), ConnectionError("down")]
    assert not await committer.commit([one])
    assert not await committer.commit([one])
    assert (one.committed, source.sent, failed._value.get()) == (None, [], 2)
    assert await committer.commit([one])
    assert source.sent == [{0: Committed(2, "")}]
    assert metrics.commits.labels("ok")._value.get() == 1
    source.refuse_metadata = True
    source.failures = [ConnectionError("down")]
    other = state(1, range(4), {0, 2})
    assert not await committer.commit([other])
    assert (other.committed, failed._value.get()) == (None, 3)
    assert await committer.commit([other])
    assert other.committed == Committed(1, "")
