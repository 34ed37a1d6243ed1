"""An in-memory Kafka: topics, consumer groups with eager rebalances, commits with metadata.

It implements the ports of `worker.kafka.ports` so that the whole pipeline runs without a
broker, deterministically: a test (or the simulator, `python -m simulation`) decides when members
join, leave or crash, which calls are slow or fail and how, and reads back every record and
commit. The behaviour suite in `tests/ports` runs on this broker and on the real one, so where
they could differ a test says so.

What it models of Kafka's classic group protocol as aiokafka speaks it:
- a rebalance runs in the background (the coordinator's task), not in the caller: a member
  learns of it while its main loop does something else, such as draining;
- every member's revoke callback is awaited before anything is assigned again (eager protocol),
  so a slow callback holds the whole group; one still running after the rebalance timeout is
  expelled (its partitions go to others, its commits are refused) and rejoins when it returns;
- members that join or leave during a rebalance are taken into account by the next round;
- commits are accepted from owners, also during their revoke callback (Kafka accepts them while
  the group prepares a rebalance), and refused from members that are expelled or no longer own
  the partitions;
- a crashed member stays in the group until its session times out (then it is expelled);
- new partitions are paused until the member resumes them (the ports' contract);
- records over `max_record_bytes` and commit metadata over `metadata_max_bytes` are refused.
Latency and failure hooks make produce, commit, fetch and committed-offset lookups slow or
failing. Left out: retention, compaction, transactions.
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
    MAX_FETCH_BYTES,
    CommitRejectedError,
    Committed,
    Headers,
    MetadataTooLargeError,
    PartitionListener,
    Record,
    RecordRejectedError,
    fetch_bytes,
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
"""(topic) → the error a reader's or member's poll fails with, or None."""
LookupFault = Callable[[str], BaseException | None]
"""(group) → the error a committed-offset lookup fails with, or None."""
Latency = Callable[[str], float]
"""(topic, or group for commits and lookups) → seconds the call takes."""


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
    sequence: int = 0  # order of appends over the whole broker (the order Kafka acknowledged)


@dataclass
class _Group:
    members: list[MemoryCommandSource] = field(default_factory=list)
    committed: dict[tuple[str, int], Committed] = field(default_factory=dict)
    rebalances: int = 0
    pending: bool = False  # membership changed since the last assignment
    coordinator: asyncio.Task[None] | None = None  # runs rebalances while `pending`
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # no rebalance running


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
        self._appends = itertools.count()
        self._changed = asyncio.Event()
        self.send_fault: SendFault | None = None
        self.commit_fault: CommitFault | None = None
        self.poll_fault: PollFault | None = None
        self.on_commit: Callable[[MemoryCommandSource, Mapping[int, Committed]], None] | None = None
        self.fetch_fault: PollFault | None = None
        self.lookup_fault: LookupFault | None = None
        self.send_latency: Latency | None = None
        self.commit_latency: Latency | None = None
        self.lookup_latency: Latency | None = None

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
        timestamp: int | None = None,
    ) -> StoredRecord:
        """Append a record: to `partition`, else by key hash, else round robin; stamped now
        unless `timestamp` (milliseconds, the producer's to choose) is given."""
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
            int(self._clock() * 1000) if timestamp is None else timestamp,
            next(self._appends),
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
    def command_source(
        self,
        topic: str,
        group: str,
        *,
        rebalance_timeout: float = 30.0,
        fetch_max_bytes: int = MAX_FETCH_BYTES,
    ) -> MemoryCommandSource:
        """A new member of `group` reading `topic` (it joins on `start`)."""
        return MemoryCommandSource(
            self, topic, group, rebalance_timeout=rebalance_timeout, fetch_max_bytes=fetch_max_bytes
        )

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

    def rebalances(self, group: str) -> int:
        """Rebalance rounds `group` has run."""
        return self._group(group).rebalances

    async def settled(self, group: str) -> None:
        """Wait until `group` runs no rebalance."""
        await self._group(group).settled.wait()

    def join(self, member: MemoryCommandSource) -> None:
        """Add `member` to its group; the rebalance runs in the background."""
        group = self._group(member.group)
        if member not in group.members:
            group.members.append(member)
        self._request_rebalance(group)

    def leave(self, member: MemoryCommandSource) -> None:
        """Remove `member` (it committed what it finished); the others rebalance."""
        group = self._group(member.group)
        if member in group.members:
            group.members.remove(member)
            member.owned = set()
            self._request_rebalance(group)

    def crash(self, member: MemoryCommandSource, *, session_timeout: float = 0.0) -> None:
        """The member's process died: it does nothing more, and is expelled once its session
        times out (at once by default)."""
        member.dead = True
        if session_timeout <= 0:
            self.leave(member)
        else:
            asyncio.get_running_loop().call_later(session_timeout, self.leave, member)

    def _request_rebalance(self, group: _Group) -> None:
        group.pending = True
        group.settled.clear()
        if group.coordinator is None or group.coordinator.done():
            group.coordinator = asyncio.create_task(self._coordinate(group), name="coordinator")

    async def _coordinate(self, group: _Group) -> None:
        while group.pending:
            await self._rebalance(group)
        group.settled.set()

    async def _rebalance(self, group: _Group) -> None:
        group.rebalances += 1
        revoking = {m: asyncio.create_task(m.revoke_all()) for m in list(group.members)}
        timeout = max((m.rebalance_timeout for m in revoking), default=0.0)
        if revoking:
            await asyncio.wait(revoking.values(), timeout=timeout)
        for member, task in revoking.items():
            if not task.done():
                self._expel(group, member, task)
        group.pending = False  # the assignment below reflects every change until now
        members = list(group.members)
        if not members:
            return
        topic = members[0].topic
        shares: dict[int, set[int]] = {i: set() for i in range(len(members))}
        for partition in range(self.partitions(topic)):
            shares[partition % len(members)].add(partition)
        await asyncio.gather(
            *(
                m.assign({p: group.committed.get((topic, p)) for p in shares[i]})
                for i, m in enumerate(members)
            )
        )

    def _expel(
        self, group: _Group, member: MemoryCommandSource, revoke: asyncio.Task[None]
    ) -> None:
        """Still in its revoke callback after the rebalance timeout: out of the group; it
        rejoins as a new member when the callback returns, as aiokafka does."""
        member.expelled += 1
        member.owned = set()
        if member in group.members:
            group.members.remove(member)

        def rejoin(_: asyncio.Task[None]) -> None:
            if not member.dead and not member.closed:
                self.join(member)

        revoke.add_done_callback(rejoin)

    async def commit(self, member: MemoryCommandSource, offsets: Mapping[int, Committed]) -> None:
        """Store commits of partitions `member` owns (when the commit arrives)."""
        latency = self.commit_latency(member.group) if self.commit_latency else 0.0
        if latency > 0:
            await asyncio.sleep(latency)
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
        if self.on_commit is not None:
            self.on_commit(member, offsets)

    async def lookup(
        self, group: str, topic: str, partitions: set[int]
    ) -> dict[int, Committed | None]:
        """Committed positions, as the admin client's offset lookup returns them."""
        latency = self.lookup_latency(group) if self.lookup_latency else 0.0
        if latency > 0:
            await asyncio.sleep(latency)
        fault = self.lookup_fault(group) if self.lookup_fault is not None else None
        if fault is not None:
            raise fault
        committed = self._group(group).committed
        return {p: committed.get((topic, p)) for p in partitions}


class MemoryCommandSource:
    """A group member; implements `CommandSource`."""

    def __init__(
        self,
        broker: InMemoryBroker,
        topic: str,
        group: str,
        *,
        rebalance_timeout: float = 30.0,
        fetch_max_bytes: int = MAX_FETCH_BYTES,
    ) -> None:
        self.topic = topic
        self.fetch_max_bytes = fetch_max_bytes
        self.group = group
        self.rebalance_timeout = rebalance_timeout
        self.owned: set[int] = set()
        self.dead = False
        self.closed = False
        self.expelled = 0  # times the group expelled it for a revoke over the timeout
        self.commits = 0
        self._broker = broker
        self._listener: PartitionListener | None = None
        self._positions: dict[int, int] = {}
        self._paused: set[int] = set()
        self._assignment = asyncio.Event()  # clear from a revoke until the next assignment

    async def start(self, listener: PartitionListener) -> None:
        """Join the group (the rebalance runs in the background)."""
        self._listener = listener
        self._broker.join(self)

    async def revoke_all(self) -> None:
        """Called by the broker at the start of a rebalance."""
        self._assignment.clear()
        owned, self._positions, self._paused = self.owned, {}, set()
        if owned and self._listener is not None and not self.dead:
            await self._listener.revoked(set(owned))
        self.owned = set()

    async def assign(self, partitions: dict[int, Committed | None]) -> None:
        """Called by the broker once the rebalance assigned `partitions` (they start paused)."""
        self.owned = set(partitions)
        self._positions = {p: c.offset if c else 0 for p, c in partitions.items()}
        self._paused = set(partitions)
        if self._listener is not None and not self.dead:
            await self._listener.assigned(set(partitions))
        self._assignment.set()

    async def poll(self, max_wait: float) -> Mapping[int, Sequence[Record]]:
        """Unread records of owned, unpaused partitions (waits up to `max_wait` for some).

        Like aiokafka's `getmany`, it waits for the next assignment whatever `max_wait` says
        while the member is joining or rebalancing.
        """
        await self._assignment.wait()
        fault = self._broker.fetch_fault
        error = fault(self.topic) if fault is not None else None
        if error is not None:
            raise error
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
        room, space = MAX_POLL_RECORDS, self.fetch_max_bytes
        for partition, position in sorted(self._positions.items()):
            if partition in self._paused or room == 0 or space <= 0:
                continue
            records: list[StoredRecord] = []
            for record in logs[partition][position : position + room]:
                if records and space - len(record.value or b"") < 0:
                    break  # as Kafka's fetch.max.bytes: whole records, at least one
                records.append(record)
                space -= len(record.value or b"") + len(record.key or b"")
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

    async def committed(self, partitions: set[int]) -> dict[int, Committed | None]:
        """The group's committed positions."""
        return await self._broker.lookup(self.group, self.topic, partitions)

    def end_offset(self, partition: int) -> int | None:
        """The partition's end (there are no transactions here)."""
        if partition not in self.owned:
            return None
        return len(self._broker._partitions(self.topic)[partition])

    async def commit(self, offsets: Mapping[int, Committed]) -> None:
        """Commit positions with metadata."""
        await self._broker.commit(self, offsets)
        self.commits += 1

    async def close(self) -> None:
        """Leave the group."""
        self.closed = True
        self._broker.leave(self)
        self._assignment.set()  # a poll in progress returns (empty)


class MemoryOutputSink:
    """A producer; implements `OutputSink`. `closed` sinks refuse to send.

    With `send_latency` set, records are appended when acknowledged, in the order they were
    sent (as one idempotent producer's records are), and a sink closed meanwhile (a crash)
    loses them.
    """

    def __init__(self, broker: InMemoryBroker) -> None:
        self.max_record_bytes = broker.max_record_bytes
        self.closed = False
        self._broker = broker
        self._tail: asyncio.Future[None] | None = None  # the last delayed record's delivery

    async def start(self) -> None:
        """Nothing to connect."""
        self.closed = False

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> Awaitable[None]:
        """Append now, or after the latency (unless a fault says otherwise)."""
        if self.closed:
            raise RuntimeError("send on a closed producer")
        size = RECORD_OVERHEAD_BYTES + len(key or b"") + len(value or b"")
        size += sum(len(name) + len(data) for name, data in headers)
        if size > self.max_record_bytes:
            raise RecordRejectedError(f"record of {size} bytes over {self.max_record_bytes}")
        broker = self._broker
        error = broker.send_fault(topic, key, value, headers) if broker.send_fault else None
        latency = broker.send_latency(topic) if broker.send_latency else 0.0
        if latency <= 0 and (self._tail is None or self._tail.done()):
            if error is None:
                broker.produce(topic, value, key=key, headers=headers)
            return _acknowledgement(error)
        loop = asyncio.get_running_loop()
        self._tail = asyncio.ensure_future(
            self._deliver(self._tail, loop.time() + latency, error, (topic, key, value, headers))
        )
        return self._tail

    async def _deliver(
        self,
        previous: asyncio.Future[None] | None,
        at: float,
        error: BaseException | None,
        record: tuple[str, bytes | None, bytes | None, Headers],
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # in order, whatever became of the previous one
        await asyncio.sleep(max(0.0, at - asyncio.get_running_loop().time()))
        if self.closed:
            raise ConnectionError("the producer was closed before the broker acknowledged")
        if error is not None:
            raise error
        topic, key, value, headers = record
        self._broker.produce(topic, value, key=key, headers=headers)

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
        source = self.broker.command_source(
            self._settings.topic_commands,
            self._settings.group_id,
            rebalance_timeout=self._settings.kafka_rebalance_timeout_seconds,
            fetch_max_bytes=fetch_bytes(self._settings.buffer_max_bytes),
        )
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
