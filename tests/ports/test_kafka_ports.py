"""One behaviour suite for the Kafka ports, run on the in-memory broker and on the real one.

What the pipeline's in-memory tests rely on must hold on Kafka too: commits carry metadata to
the next member, a revoked member cannot commit, oversize records and metadata are refused with
the port's errors, paused partitions return nothing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from tests import kafka
from worker.kafka.aio import AioCommandSource, AioOutputSink, AioTopicReader
from worker.kafka.memory import InMemoryBroker
from worker.kafka.ports import (
    CommandSource,
    CommitRejectedError,
    Committed,
    MetadataTooLargeError,
    OutputSink,
    Record,
    RecordRejectedError,
    TopicReader,
)
from worker.settings import Settings

MAX_RECORD = 100_000
WITHIN = 30.0


@dataclass
class Listener:
    """Records what a member was told, in order."""

    events: list[tuple[str, Any]] = field(default_factory=list)
    owned: dict[int, Committed | None] = field(default_factory=dict)

    async def assigned(self, partitions: Mapping[int, Committed | None]) -> None:
        self.events.append(("assigned", dict(partitions)))
        self.owned.update(partitions)

    async def revoked(self, partitions: set[int]) -> None:
        self.events.append(("revoked", set(partitions)))
        for partition in partitions:
            self.owned.pop(partition, None)


class Cluster:
    """Makes topics and clients on one kind of broker."""

    def __init__(self, kind: str, bootstrap: str = "") -> None:
        self.kind = kind
        self._bootstrap = bootstrap
        self._memory = InMemoryBroker(max_record_bytes=10 * MAX_RECORD)
        self._topics: list[str] = []
        self._closers: list[Callable[[], Awaitable[None]]] = []

    async def topic(self, partitions: int) -> str:
        name = kafka.unique_name("ports")
        if self.kind == "memory":
            self._memory.create_topic(name, partitions)
        else:
            await kafka.create_topics(self._bootstrap, [name], partitions=partitions)
            self._topics.append(name)
        return name

    def _settings(self, topic: str, group: str) -> Settings:
        return msgspec.convert(
            {
                "kafka_bootstrap": self._bootstrap,
                "topic_commands": topic,
                "group_id": group,
                "max_record_bytes": MAX_RECORD,
                "max_result_bytes": MAX_RECORD // 2,
                "kafka_session_timeout_seconds": 6.0,
                "kafka_heartbeat_interval_seconds": 1.0,
                "kafka_rebalance_timeout_seconds": 10.0,
            },
            Settings,
        )

    async def source(self, topic: str, group: str, listener: Listener) -> CommandSource:
        source: CommandSource
        if self.kind == "memory":
            source = self._memory.command_source(topic, group)
        else:
            source = AioCommandSource(self._settings(topic, group))
        await source.start(listener)
        self._closers.append(source.close)
        return source

    async def sink(self) -> OutputSink:
        sink: OutputSink
        if self.kind == "memory":
            sink = self._memory.output_sink()
            sink.max_record_bytes = MAX_RECORD
        else:
            sink = AioOutputSink(self._settings("unused", "unused"))
        await sink.start()
        self._closers.append(sink.close)
        return sink

    async def reader(self, topic: str) -> TopicReader:
        reader: TopicReader
        if self.kind == "memory":
            reader = self._memory.topic_reader(topic)
        else:
            reader = AioTopicReader(self._settings(topic, "readers"), topic, "ports-test")
        self._closers.append(reader.close)
        return reader

    async def close(self) -> None:
        for close in reversed(self._closers):
            await close()
        if self._topics:
            await kafka.delete_topics(self._bootstrap, self._topics)


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    """The in-memory broker, or the real one."""
    bootstrap = request.getfixturevalue("kafka_bootstrap") if request.param == "kafka" else ""
    made = Cluster(request.param, bootstrap)
    yield made
    await made.close()


async def polled(
    source: CommandSource, count: int, within: float = WITHIN
) -> dict[int, list[Record]]:
    """Poll until `count` records arrived (joining the group happens meanwhile)."""
    got: dict[int, list[Record]] = {}
    deadline = time.monotonic() + within
    while sum(map(len, got.values())) < count:
        assert time.monotonic() < deadline, f"only {sum(map(len, got.values()))} of {count}"
        for partition, records in (await source.poll(0.2)).items():
            got.setdefault(partition, []).extend(records)
    return got


async def sent(sink: OutputSink, topic: str, *values: bytes, key: bytes | None = None) -> None:
    for value in values:
        await (await sink.send(topic, key, value, [("h", b"v")]))


async def test_records_round_trip_from_sink_to_reader(cluster: Cluster) -> None:
    """What the sink acknowledged, a reader sees with key, value and headers; seek re-reads."""
    topic = await cluster.topic(2)
    sink = await cluster.sink()
    await sent(sink, topic, b"a", b"b", b"c", key=b"same-key")
    reader = await cluster.reader(topic)
    partitions = await reader.start()
    assert partitions == [0, 1]
    first, end = await reader.offsets()
    assert first == {0: 0, 1: 0}
    assert sum(end.values()) == 3
    records: list[Record] = []
    deadline = time.monotonic() + WITHIN
    while len(records) < 3 and time.monotonic() < deadline:
        records += await reader.poll(0.2)
    assert [r.value for r in records] == [b"a", b"b", b"c"]  # one key: one partition, in order
    assert {r.key for r in records} == {b"same-key"}
    assert list(records[0].headers) == [("h", b"v")]
    partition = records[0].partition
    assert await reader.position(partition) == 3
    reader.seek(partition, 1)
    again: list[Record] = []
    while len(again) < 2 and time.monotonic() < deadline:
        again += await reader.poll(0.2)
    assert [r.value for r in again] == [b"b", b"c"]


async def test_a_commit_and_its_metadata_reach_the_next_member(cluster: Cluster) -> None:
    """The next member is assigned the committed position with the metadata string."""
    topic = await cluster.topic(1)
    sink = await cluster.sink()
    await sent(sink, topic, b"0", b"1", b"2", b"3")
    group = f"g-{uuid.uuid4().hex[:8]}"
    first = Listener()
    source = await cluster.source(topic, group, first)
    got = await polled(source, 4)
    assert [r.offset for r in got[0]] == [0, 1, 2, 3]
    assert first.events[0] == ("assigned", {0: None})
    await source.commit({0: Committed(1, "om1:1:finished-above")})
    await source.close()
    second = Listener()
    other = await cluster.source(topic, group, second)
    again = await polled(other, 3)
    assert second.events[0] == ("assigned", {0: Committed(1, "om1:1:finished-above")})
    assert [r.offset for r in again[0]] == [1, 2, 3]


async def test_a_member_cannot_commit_partitions_it_gave_up(cluster: Cluster) -> None:
    """After a rebalance moved a partition away, committing it is refused."""
    topic = await cluster.topic(2)
    group = f"g-{uuid.uuid4().hex[:8]}"
    first = Listener()
    source = await cluster.source(topic, group, first)
    await polled(source, 0)
    deadline = time.monotonic() + WITHIN
    while set(first.owned) != {0, 1}:
        assert time.monotonic() < deadline, first.events
        await source.poll(0.2)
    second = Listener()
    other = await cluster.source(topic, group, second)
    while not (first.owned and second.owned):
        assert time.monotonic() < deadline, (first.events, second.events)
        await asyncio.gather(source.poll(0.2), other.poll(0.2))
    assert ("revoked", {0, 1}) in first.events
    assert sorted([*first.owned, *second.owned]) == [0, 1]
    (lost,) = set(second.owned)
    with pytest.raises(CommitRejectedError):
        await source.commit({lost: Committed(0)})


async def test_oversize_records_and_metadata_are_refused(cluster: Cluster) -> None:
    """A record over the size limit and metadata over 4,096 bytes raise the port's errors."""
    topic = await cluster.topic(1)
    sink = await cluster.sink()
    with pytest.raises(RecordRejectedError):
        await (await sink.send(topic, None, b"x" * (MAX_RECORD + 1), []))
    await sent(sink, topic, b"fits")
    source = await cluster.source(topic, f"g-{uuid.uuid4().hex[:8]}", Listener())
    await polled(source, 1)
    with pytest.raises(MetadataTooLargeError):
        await source.commit({0: Committed(1, "m" * 5000)})


async def test_paused_partitions_return_nothing_until_resumed(cluster: Cluster) -> None:
    """Back-pressure: a paused partition's new records wait; resuming releases them."""
    topic = await cluster.topic(1)
    sink = await cluster.sink()
    source = await cluster.source(topic, f"g-{uuid.uuid4().hex[:8]}", Listener())
    await sent(sink, topic, b"first")
    await polled(source, 1)
    source.pause(0)
    await sent(sink, topic, b"second")
    for _ in range(5):
        assert not await source.poll(0.2)
    source.resume(0)
    got = await polled(source, 1)
    assert [r.value for r in got[0]] == [b"second"]
    assert source.end_offset(0) == 2
    assert await source.position(0) == 2


async def test_no_record_arrives_before_the_listener_knows_its_partition(
    cluster: Cluster,
) -> None:
    """Records of a new partition wait until the listener's `assigned` has returned."""
    topic = await cluster.topic(1)
    sink = await cluster.sink()
    await sent(sink, topic, b"early")
    listener = SlowListener()
    source = await cluster.source(topic, f"g-{uuid.uuid4().hex[:8]}", listener)
    got = await polled(source, 1)
    assert listener.returned_at is not None, "a record arrived while `assigned` was running"
    assert [r.value for r in got[0]] == [b"early"]


@dataclass
class SlowListener(Listener):
    """Takes a second to take its partitions, noting when it is done."""

    returned_at: float | None = None

    async def assigned(self, partitions: Mapping[int, Committed | None]) -> None:
        await asyncio.sleep(1.0)
        await super().assigned(partitions)
        self.returned_at = time.monotonic()


@pytest.mark.kafka
async def test_members_that_stay_keep_their_partitions_when_one_joins(kafka_bootstrap: str) -> None:
    """The sticky assignor (the default): with 6 partitions, a third member takes 2, one from
    each of the others, who keep the other 2 of their 3. Round robin would deal all six anew,
    leaving each of them only 1 of its 3."""
    cluster = Cluster("kafka", kafka_bootstrap)
    try:
        topic = await cluster.topic(6)
        group = f"g-{uuid.uuid4().hex[:8]}"
        first, second, third = Listener(), Listener(), Listener()
        members = [await cluster.source(topic, group, first)]
        members.append(await cluster.source(topic, group, second))
        await settled(members, [first, second], each=3)
        before = [set(first.owned), set(second.owned)]
        members.append(await cluster.source(topic, group, third))
        await settled(members, [first, second, third], each=2)
    finally:
        await cluster.close()
    assert set(first.owned) < before[0]
    assert set(second.owned) < before[1]


async def settled(members: list[CommandSource], listeners: list[Listener], each: int) -> None:
    """Poll every member until each owns `each` partitions (the group has rebalanced)."""
    deadline = time.monotonic() + WITHIN
    while sorted(len(listener.owned) for listener in listeners) != [each] * len(listeners):
        assert time.monotonic() < deadline, [listener.owned for listener in listeners]
        await asyncio.gather(*(member.poll(0.1) for member in members))
