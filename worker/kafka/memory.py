"""An in-memory Kafka: topics, consumer groups with eager rebalances, commits with metadata.

It implements the ports of `worker.kafka.ports` so that the whole pipeline runs without a
broker, deterministically: a test decides when members join, leave or crash, which sends fail
and how, and reads back every record and commit. The behaviour suite in `tests/ports` runs on
this broker and on the real one, so where they could differ a test says so.

What it models: partitions as append-only lists; keyed records partitioned by a stable hash;
a group's committed positions with metadata; the classic eager protocol (every member's
partitions are revoked, its listener awaited, then everything is assigned again, round robin);
commits refused for partitions a member no longer owns; records over `max_record_bytes` and
commit metadata over `metadata_max_bytes` refused. What it leaves out: retention, compaction,
transactions, timeouts (a crashed member is removed when the test says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from worker.kafka.ports import (
    CommitRejectedError,
    Committed,
    Headers,
    MetadataTooLargeError,
    PartitionListener,
    Record,
    RecordRejectedError,
)
from worker.kafka.topics import required_topics
from worker.settings import Settings

RECORD_OVERHEAD_BYTES = 70  # about what Kafka's record batch format adds per record
MAX_POLL_RECORDS = 500

SendFault = Callable[[str, bytes | None, bytes | None, Headers], BaseException | None]
"""(topic, key, value, headers) → the error the send's acknowledgement fails with, or None."""
CommitFault = Callable[[Mapping[int, Committed]], BaseException | None]
"""(offsets) → the error a commit fails with, or None."""
PollFault = Callable[[str], BaseException | None]
"""(topic) → the error a reader's poll fails with, or None."""


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record on an in-memory topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int  # milliseconds since the epoch


@dataclass
class _Group:
    members: list[MemoryCommandSource] = field(default_factory=list)
    committed: dict[tuple[str, int], Committed] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    rebalances: int = 0


class InMemoryBroker:
    """Topics and groups of one in-memory cluster."""

    def __init__(
        self,
        *,
        max_record_bytes: int = 1_048_588,
        metadata_max_bytes: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_record_bytes = max_record_bytes
        self.metadata_max_bytes = metadata_max_bytes
        self._clock = clock
        self._topics: dict[str, list[list[StoredRecord]]] = {}
        self._groups: dict[str, _Group] = {}
        self._round_robin = itertools.count()
        self._changed = asyncio.Event()
        self.send_fault: SendFault | None = None
        self.commit_fault: CommitFault | None = None
        self.poll_fault: PollFault | None = None

    # ---------------------------------------------------------------- topics and records
    def create_topic(self, name: str, partitions: int = 1) -> None:
        """Create `name` with `partitions` partitions (an existing topic is left alone)."""
        self._topics.setdefault(name, [[] for _ in range(partitions)])

    def has_topic(self, name: str) -> bool:
        """Whether `name` exists."""
        return name in self._topics

    def partitions(self, topic: str) -> int:
        """How many partitions `topic` has."""
        return len(self._partitions(topic))

    def produce(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Headers = (),
        partition: int | None = None,
    ) -> StoredRecord:
        """Append a record: to `partition`, else by key hash, else round robin."""
        partitions = self._partitions(topic)
        if partition is None:
            partition = (
                zlib.crc32(key) % len(partitions)
                if key is not None
                else next(self._round_robin) % len(partitions)
            )
        log = partitions[partition]
        record = StoredRecord(
            topic,
            partition,
            len(log),
            key,
            value,
            tuple(headers),
            int(self._clock() * 1000),
        )
        log.append(record)
        self._changed.set()
        self._changed = asyncio.Event()
        return record

    def records(self, topic: str) -> list[StoredRecord]:
        """Every record of `topic`, partition by partition."""
        return [record for log in self._partitions(topic) for record in log]

    def partition_log(self, topic: str, partition: int) -> Sequence[StoredRecord]:
        """The records of one partition, without copying (a view to read, not to change)."""
        return self._partitions(topic)[partition]

    def committed(self, group: str, topic: str, partition: int) -> Committed | None:
        """The group's committed position of a partition."""
        return self._group(group).committed.get((topic, partition))

    def _partitions(self, topic: str) -> list[list[StoredRecord]]:
        try:
            return self._topics[topic]
        except KeyError:
            raise LookupError(f"no topic {topic!r} in the in-memory broker") from None

    def _group(self, group: str) -> _Group:
        return self._groups.setdefault(group, _Group())

    async def _wait_for_records(self, max_wait: float) -> None:
        if max_wait > 0:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives as the event is set, and a cancelled poll loop must end
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max_wait):
                    await self._changed.wait()

    # ---------------------------------------------------------------- clients
    def command_source(self, topic: str, group: str) -> MemoryCommandSource:
        """A new member of `group` reading `topic` (it joins on `start`)."""
        return MemoryCommandSource(self, topic, group)

    def output_sink(self) -> MemoryOutputSink:
        """A producer."""
        return MemoryOutputSink(self)

    def topic_reader(self, topic: str) -> MemoryTopicReader:
        """A group-less reader of `topic`."""
        return MemoryTopicReader(self, topic)

    def backend(self, settings: Settings) -> MemoryBackend:
        """The clients of one worker configured with `settings`."""
        return MemoryBackend(self, settings)

    # ---------------------------------------------------------------- group membership
    def group_size(self, group: str) -> int:
        """Members currently in `group`."""
        return len(self._group(group).members)

    async def join(self, member: MemoryCommandSource) -> None:
        """Add `member` to its group and rebalance."""
        group = self._group(member.group)
        group.members.append(member)
        await self._rebalance(group, member.topic)

    async def leave(self, member: MemoryCommandSource) -> None:
        """Remove `member` gracefully (it already committed) and rebalance the others."""
        group = self._group(member.group)
        if member in group.members:
            group.members.remove(member)
            member.owned = set()
            await self._rebalance(group, member.topic)

    async def crash(self, member: MemoryCommandSource) -> None:
        """Expel `member` as a session timeout would: no revoke, its commits refused."""
        member.dead = True
        await self.leave(member)

    async def _rebalance(self, group: _Group, topic: str) -> None:
        async with group.lock:
            group.rebalances += 1
            await asyncio.gather(*(m.revoke_all() for m in group.members))
            members = list(group.members)
            shares: dict[int, set[int]] = {i: set() for i in range(len(members))}
            for partition in range(self.partitions(topic)):
                if members:
                    shares[partition % len(members)].add(partition)
            await asyncio.gather(
                *(
                    m.assign({p: group.committed.get((topic, p)) for p in shares[i]})
                    for i, m in enumerate(members)
                )
            )

    def commit(self, member: MemoryCommandSource, offsets: Mapping[int, Committed]) -> None:
        """Store commits of partitions `member` owns."""
        fault = self.commit_fault(offsets) if self.commit_fault is not None else None
        if fault is not None:
            raise fault
        if member.dead or not set(offsets) <= member.owned:
            raise CommitRejectedError(
                f"member does not own partitions {sorted(set(offsets) - member.owned)}"
            )
        for committed in offsets.values():
            if len(committed.metadata.encode()) > self.metadata_max_bytes:
                raise MetadataTooLargeError(f"metadata over {self.metadata_max_bytes} bytes")
        group = self._group(member.group)
        for partition, committed in offsets.items():
            group.committed[(member.topic, partition)] = committed


class MemoryCommandSource:
    """A group member; implements `CommandSource`."""

    def __init__(self, broker: InMemoryBroker, topic: str, group: str) -> None:
        self.topic = topic
        self.group = group
        self.owned: set[int] = set()
        self.dead = False
        self.commits = 0
        self._broker = broker
        self._listener: PartitionListener | None = None
        self._positions: dict[int, int] = {}
        self._paused: set[int] = set()

    async def start(self, listener: PartitionListener) -> None:
        """Join the group."""
        self._listener = listener
        await self._broker.join(self)

    async def revoke_all(self) -> None:
        """Called by the broker at the start of a rebalance."""
        owned, self._positions, self._paused = self.owned, {}, set()
        if owned and self._listener is not None and not self.dead:
            await self._listener.revoked(set(owned))
        self.owned = set()

    async def assign(self, partitions: dict[int, Committed | None]) -> None:
        """Called by the broker once the rebalance assigned `partitions`."""
        self.owned = set(partitions)
        if partitions and self._listener is not None:
            await self._listener.assigned(partitions)
        # only now: no record may arrive before the listener knows its partition
        self._positions = {p: c.offset if c else 0 for p, c in partitions.items()}

    async def poll(self, max_wait: float) -> Mapping[int, Sequence[Record]]:
        """Unread records of owned, unpaused partitions (waits up to `max_wait` for some)."""
        batch = self._take()
        if not batch:
            await self._broker._wait_for_records(max_wait)
            batch = self._take()
        return batch

    def _take(self) -> dict[int, list[StoredRecord]]:
        if self.dead:
            return {}
        logs = self._broker._partitions(self.topic)
        batch: dict[int, list[StoredRecord]] = {}
        room = MAX_POLL_RECORDS
        for partition, position in sorted(self._positions.items()):
            if partition in self._paused or room == 0:
                continue
            records = logs[partition][position : position + room]
            if records:
                batch[partition] = records
                self._positions[partition] = position + len(records)
                room -= len(records)
        return batch

    def pause(self, partition: int) -> None:
        """Stop returning `partition`'s records."""
        self._paused.add(partition)

    def resume(self, partition: int) -> None:
        """Return `partition`'s records again."""
        self._paused.discard(partition)

    async def position(self, partition: int) -> int | None:
        """Next offset `poll` returns."""
        return self._positions.get(partition)

    def end_offset(self, partition: int) -> int | None:
        """The partition's end (there are no transactions here)."""
        if partition not in self.owned:
            return None
        return len(self._broker._partitions(self.topic)[partition])

    async def commit(self, offsets: Mapping[int, Committed]) -> None:
        """Commit positions with metadata."""
        self._broker.commit(self, offsets)
        self.commits += 1

    async def close(self) -> None:
        """Leave the group."""
        await self._broker.leave(self)


class MemoryOutputSink:
    """A producer; implements `OutputSink`. `closed` sinks refuse to send."""

    def __init__(self, broker: InMemoryBroker) -> None:
        self.max_record_bytes = broker.max_record_bytes
        self.closed = False
        self._broker = broker

    async def start(self) -> None:
        """Nothing to connect."""
        self.closed = False

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> Awaitable[None]:
        """Append now (unless a fault says otherwise); the acknowledgement is immediate."""
        if self.closed:
            raise RuntimeError("send on a closed producer")
        size = RECORD_OVERHEAD_BYTES + len(key or b"") + len(value or b"")
        size += sum(len(name) + len(data) for name, data in headers)
        if size > self.max_record_bytes:
            raise RecordRejectedError(f"record of {size} bytes over {self.max_record_bytes}")
        fault = self._broker.send_fault
        error = fault(topic, key, value, headers) if fault is not None else None
        if error is None:
            self._broker.produce(topic, value, key=key, headers=headers)
        return _acknowledgement(error)

    async def close(self) -> None:
        """Refuse further sends."""
        self.closed = True


async def _acknowledgement(error: BaseException | None) -> None:
    if error is not None:
        raise error


class MemoryTopicReader:
    """A group-less reader; implements `TopicReader`."""

    def __init__(self, broker: InMemoryBroker, topic: str) -> None:
        self._broker = broker
        self._topic = topic
        self._positions: dict[int, int] = {}

    async def start(self) -> list[int]:
        """Assign every partition from its beginning."""
        self._positions = dict.fromkeys(range(self._broker.partitions(self._topic)), 0)
        return sorted(self._positions)

    async def offsets(self) -> tuple[dict[int, int], dict[int, int]]:
        """(first, end) offsets."""
        logs = self._broker._partitions(self._topic)
        return dict.fromkeys(self._positions, 0), {p: len(logs[p]) for p in self._positions}

    def seek(self, partition: int, offset: int) -> None:
        """Read `partition` from `offset`."""
        self._positions[partition] = offset

    async def poll(self, max_wait: float) -> list[Record]:
        """Unread records of every partition (waits up to `max_wait` for some)."""
        fault = self._broker.poll_fault
        error = fault(self._topic) if fault is not None else None
        if error is not None:
            raise error
        records = self._take()
        if not records:
            await self._broker._wait_for_records(max_wait)
            records = self._take()
        return records

    def _take(self) -> list[Record]:
        logs = self._broker._partitions(self._topic)
        taken: list[Record] = []
        for partition, position in self._positions.items():
            records = logs[partition][position : position + MAX_POLL_RECORDS]
            self._positions[partition] = position + len(records)
            taken.extend(records)
        return taken

    async def position(self, partition: int) -> int:
        """Next offset to read."""
        return self._positions[partition]

    async def close(self) -> None:
        """Nothing to disconnect."""


class MemoryBackend:
    """The clients of one worker on an `InMemoryBroker`; implements `KafkaBackend`."""

    def __init__(self, broker: InMemoryBroker, settings: Settings) -> None:
        self.broker = broker
        self._settings = settings
        self.sources: list[MemoryCommandSource] = []
        self.sinks: list[MemoryOutputSink] = []

    def command_source(self) -> MemoryCommandSource:
        """A new member of the settings' group."""
        source = self.broker.command_source(self._settings.topic_commands, self._settings.group_id)
        self.sources.append(source)
        return source

    def output_sink(self) -> MemoryOutputSink:
        """A producer."""
        sink = self.broker.output_sink()
        self.sinks.append(sink)
        return sink

    def topic_reader(self, topic: str, purpose: str) -> MemoryTopicReader:
        """A group-less reader of `topic`."""
        del purpose
        return self.broker.topic_reader(topic)

    async def wait_for_cluster(self, stop: asyncio.Event) -> bool:
        """The in-memory broker is always there."""
        del stop
        return True

    async def ensure_topics(self) -> list[str]:
        """Create the worker's missing topics with the configured partition count."""
        missing = [t for t in required_topics(self._settings) if not self.broker.has_topic(t)]
        for name in missing:
            self.broker.create_topic(name, self._settings.topic_partitions)
        return missing
