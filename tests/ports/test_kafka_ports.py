"""One behaviour suite for the Kafka ports, run on the in-memory broker and on the real one.

What the pipeline's in-memory tests and the simulator rely on must hold on Kafka too: commits
carry metadata to the next member, a revoked member cannot commit, oversize records and metadata
are refused with the port's errors, paused partitions return nothing, new partitions arrive
paused. And the group's timing: a rebalance reaches a member from the background while its main
loop does something else, a revoke callback holds the whole rebalance, a member still in its
callback after the rebalance timeout is expelled (its partitions go to the others and its
commits are refused), and commits made inside the callback before that are accepted.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

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
REBALANCE_TIMEOUT = 6.0


@dataclass
class Listener:
    """Records what a member was told, in order; resumes new partitions unless told not to."""

    resume: bool = True
    events: list[tuple[str, set[int]]] = field(default_factory=list)
    owned: set[int] = field(default_factory=set)
    source: CommandSource | None = None
    hold_revoke: asyncio.Event | None = None  # a revoke waits for it when set
    in_revoke: asyncio.Event = field(default_factory=asyncio.Event)
    on_revoke: Callable[[set[int]], Awaitable[None]] | None = None

    async def assigned(self, partitions: set[int]) -> None:
        self.events.append(("assigned", set(partitions)))
        self.owned |= partitions
        if self.resume and self.source is not None:
            for partition in partitions:
                self.source.resume(partition)

    async def revoked(self, partitions: set[int]) -> None:
        self.events.append(("revoked", set(partitions)))
        self.in_revoke.set()
        if self.on_revoke is not None:
            await self.on_revoke(partitions)
        if self.hold_revoke is not None:
            await self.hold_revoke.wait()
        self.owned -= partitions


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
                "kafka_rebalance_timeout_seconds": REBALANCE_TIMEOUT,
            },
            Settings,
        )

    async def source(self, topic: str, group: str, listener: Listener) -> CommandSource:
        source: CommandSource
        if self.kind == "memory":
            source = self._memory.command_source(topic, group, rebalance_timeout=REBALANCE_TIMEOUT)
        else:
            source = AioCommandSource(self._settings(topic, group))
        listener.source = source
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
    """The next member reads the committed position with the metadata string, and its records
    start there."""
    topic = await cluster.topic(1)
    sink = await cluster.sink()
    await sent(sink, topic, b"0", b"1", b"2", b"3")
    group = f"g-{uuid.uuid4().hex[:8]}"
    first = Listener()
    source = await cluster.source(topic, group, first)
    got = await polled(source, 4)
    assert [r.offset for r in got[0]] == [0, 1, 2, 3]
    assert first.events[0] == ("assigned", {0})
    assert await source.committed({0}) == {0: None}
    await source.commit({0: Committed(1, "om1:1:finished-above")})
    await source.close()
    second = Listener()
    other = await cluster.source(topic, group, second)
    again = await polled(other, 3)
    assert second.events[0] == ("assigned", {0})
    assert await other.committed({0}) == {0: Committed(1, "om1:1:finished-above")}
    assert [r.offset for r in again[0]] == [1, 2, 3]


async def test_a_member_cannot_commit_partitions_it_gave_up(cluster: Cluster) -> None:
    """After a rebalance moved a partition away, committing it is refused."""
    topic = await cluster.topic(2)
    group = f"g-{uuid.uuid4().hex[:8]}"
    first = Listener()
    source = await cluster.source(topic, group, first)
    await polled(source, 0)
    deadline = time.monotonic() + WITHIN
    while first.owned != {0, 1}:
        assert time.monotonic() < deadline, first.events
        await source.poll(0.2)
    second = Listener()
    other = await cluster.source(topic, group, second)
    while not (first.owned and second.owned):
        assert time.monotonic() < deadline, (first.events, second.events)
        await asyncio.gather(source.poll(0.2), other.poll(0.2))
    assert ("revoked", {0, 1}) in first.events
    assert sorted([*first.owned, *second.owned]) == [0, 1]
    (lost,) = second.owned
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


async def test_new_partitions_arrive_paused_until_resumed(cluster: Cluster) -> None:
    """A member returns no record of a partition it was assigned until it resumes it: the
    pipeline opens a partition (its committed position, its dedupe memory) first."""
    topic = await cluster.topic(1)
    sink = await cluster.sink()
    await sent(sink, topic, b"early")
    listener = Listener(resume=False)
    source = await cluster.source(topic, f"g-{uuid.uuid4().hex[:8]}", listener)
    deadline = time.monotonic() + WITHIN
    while not listener.owned:
        assert time.monotonic() < deadline, "no assignment"
        assert not await source.poll(0.2)
    for _ in range(5):
        assert not await source.poll(0.2)
    source.resume(0)
    got = await polled(source, 1)
    assert [r.value for r in got[0]] == [b"early"]


async def two_members(
    cluster: Cluster, first: Listener, second: Listener
) -> tuple[CommandSource, CommandSource, str]:
    """A member that owns both partitions of a new topic, then a second one joining. Nobody
    polls meanwhile: the group's work runs in the background (a poll would only wait for it)."""
    topic = await cluster.topic(2)
    group = f"g-{uuid.uuid4().hex[:8]}"
    source = await cluster.source(topic, group, first)
    await eventually(lambda: first.owned == {0, 1}, "the first member's assignment")
    other = await cluster.source(topic, group, second)
    return source, other, topic


async def eventually(condition: Callable[[], bool], what: str, within: float = WITHIN) -> None:
    """Wait until `condition` holds; fail naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        await asyncio.sleep(0.05)


async def test_a_rebalance_reaches_a_member_whose_main_loop_is_busy(cluster: Cluster) -> None:
    """The revoke callback runs while the member's own loop is not polling (as while it
    drains at shutdown): the group does not wait for the member's next poll."""
    first, second = Listener(), Listener()
    await two_members(cluster, first, second)
    await asyncio.wait_for(first.in_revoke.wait(), WITHIN)
    assert ("revoked", {0, 1}) in first.events
    await eventually(lambda: bool(first.owned and second.owned), "both assigned")


async def test_a_revoke_callback_holds_the_rebalance_until_it_returns(cluster: Cluster) -> None:
    """While one member is still in its revoke callback, no member is assigned anything, and
    that member's poll does not return (it waits for the next assignment, whatever its
    timeout): a consumer loop must not count on its poll to notice a stop meanwhile."""
    first, second = Listener(hold_revoke=asyncio.Event()), Listener()
    source, _, _ = await two_members(cluster, first, second)
    await asyncio.wait_for(first.in_revoke.wait(), WITHIN)
    blocked = asyncio.create_task(source.poll(0.1))
    await asyncio.sleep(REBALANCE_TIMEOUT / 3)
    assert not second.owned, "assigned while a member was still revoking"
    assert not blocked.done(), "a poll returned while its member was revoking"
    assert first.hold_revoke is not None
    first.hold_revoke.set()
    await asyncio.wait_for(blocked, WITHIN)
    await eventually(lambda: bool(first.owned and second.owned), "both assigned")
    assert sorted([*first.owned, *second.owned]) == [0, 1]


async def test_commits_inside_the_revoke_callback_are_accepted(cluster: Cluster) -> None:
    """A member commits what it finished while it is being revoked; the next owner reads it."""
    first, second = Listener(), Listener()

    async def commit_both(partitions: set[int]) -> None:
        assert first.source is not None
        await first.source.commit({p: Committed(5 + p, f"m{p}") for p in partitions})

    first.on_revoke = commit_both
    _, other, _ = await two_members(cluster, first, second)
    await eventually(lambda: bool(second.owned), "the new owner")
    assert await other.committed({0, 1}) == {0: Committed(5, "m0"), 1: Committed(6, "m1")}


async def test_a_member_past_the_rebalance_timeout_is_expelled(cluster: Cluster) -> None:
    """A member still in its revoke callback after the rebalance timeout loses its partitions
    to the others, and its commits are refused from then on; it rejoins once it returns."""
    first, second = Listener(hold_revoke=asyncio.Event()), Listener()
    source, _, _ = await two_members(cluster, first, second)
    await asyncio.wait_for(first.in_revoke.wait(), WITHIN)
    await eventually(
        lambda: second.owned == {0, 1}, "the newcomer owning all", REBALANCE_TIMEOUT + WITHIN
    )
    with pytest.raises(CommitRejectedError):
        await source.commit({0: Committed(1)})
    assert first.hold_revoke is not None
    first.hold_revoke.set()
    await eventually(lambda: bool(first.owned and second.owned), "the expelled member back")


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
        await cluster.source(topic, group, first)
        await settled([first], each=6)  # members that start together can rejoin for long
        await cluster.source(topic, group, second)
        await settled([first, second], each=3)
        before = [set(first.owned), set(second.owned)]
        await cluster.source(topic, group, third)
        await settled([first, second, third], each=2)
    finally:
        await cluster.close()
    assert set(first.owned) < before[0]
    assert set(second.owned) < before[1]


async def settled(listeners: list[Listener], each: int) -> None:
    """Wait until each member owns `each` partitions (the group has rebalanced). A join can
    take two rounds of the group (a member hears of it at its next heartbeat, then all rejoin
    within the rebalance timeout), and more on a loaded machine: twice the usual bound."""
    await eventually(
        lambda: sorted(len(listener.owned) for listener in listeners) == [each] * len(listeners),
        f"each member owning {each}",
        within=2 * WITHIN,
    )
