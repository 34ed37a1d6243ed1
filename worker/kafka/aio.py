"""The Kafka ports implemented with aiokafka.

Group timing is explicit (see `worker.kafka.timing`): a member that is still finishing its
revoked partitions' commands keeps heartbeating and must rejoin within the rebalance timeout,
so the revoke deadlines are derived from that timeout (`worker.deadlines`). Fetch sizes follow
the byte budget, so that what aiokafka holds beyond it is a fraction of it. Commands are read with
`isolation_level="read_committed"`: a transactional producer's aborted records never run, and
lag is measured against the last stable offset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from aiokafka.errors import (
    CommitFailedError,
    CorruptRecordException,
    IllegalStateError,
    MessageSizeTooLargeError,
    OffsetMetadataTooLargeError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnknownProducerId,
)

from worker.kafka.connection import client_options, stop_within
from worker.kafka.pacing import pace_failed_metadata_refreshes
from worker.kafka.partitioner import default_partition
from worker.kafka.ports import (
    CommitRejectedError,
    Committed,
    Headers,
    MetadataTooLargeError,
    PartitionListener,
    Record,
    RecordRejectedError,
    fetch_bytes,
)
from worker.kafka.startup import wait_for_cluster
from worker.kafka.timing import GroupTiming
from worker.kafka.topics import ensure_topics
from worker.settings import Settings

log = structlog.get_logger(__name__)

MAX_POLL_RECORDS = 500  # per fetch; a partition can overshoot its buffer by one batch
FETCH_MAX_WAIT_MS = 100
PRODUCER_MAX_BATCH_BYTES = 262_144
ASSIGNMENT_WAIT_SECONDS = 30.0
MAX_PARTITION_FETCH_BYTES = 1_048_576  # the default; a larger first record still comes whole

# The assignor the settings prefer first; the others stay supported, so a group whose older
# members speak only one of them (a rolling upgrade) keeps working with that one until they
# are gone. Sticky is the default: a member that stays keeps its partitions when another joins
# or leaves, so a scale step moves only the partitions that must move (round robin deals every
# partition anew, and each moved partition's in-flight commands are interrupted).
ASSIGNORS: dict[str, type[AbstractPartitionAssignor]] = {
    "sticky": StickyPartitionAssignor,
    "roundrobin": RoundRobinPartitionAssignor,
    "range": RangePartitionAssignor,
}

# Failures that describe the record itself; sending it again can never succeed.
_REJECTIONS = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
)

# Failures that say the broker no longer knows where this producer's numbering stands: a broker
# that came back without the acknowledged tail of its log, or producer state it expired. aiokafka
# keeps numbering from where it was, so every later record of that partition fails the same way,
# for ever. The Java client resets its producer id here (KIP-360); the sink starts a new producer.
_SEQUENCE_LOST = (OutOfOrderSequenceNumber, UnknownProducerId, ProducerFenced)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Adapts aiokafka's listener to the port's: partition numbers, new ones paused."""

    def __init__(self, source: AioCommandSource, listener: PartitionListener) -> None:
        self._source = source
        self._listener = listener

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked:
            await self._listener.revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if not assigned:
            return
        # paused, aiokafka returns nothing of them (fetched records are dropped and fetched
        # again later) until the pipeline has opened them and resumes them
        self._source.hold(assigned)
        await self._listener.assigned({tp.partition for tp in assigned})


class AioCommandSource:
    """The command topic's group member."""

    def __init__(self, settings: Settings) -> None:
        timing = GroupTiming.from_settings(settings)
        fetch_max = fetch_bytes(settings.buffer_max_bytes)
        self.topic = settings.topic_commands
        self._group = settings.group_id
        self._options = client_options(settings)
        self._consumer = AIOKafkaConsumer(
            group_id=settings.group_id,
            group_instance_id=settings.group_instance_id or None,
            client_id=settings.group_instance_id or f"{settings.group_id}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # commands produced before the first start still run
            isolation_level="read_committed",
            max_poll_records=MAX_POLL_RECORDS,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            # one fetch is the most the worker buffers beyond its byte budget
            fetch_max_bytes=fetch_max,
            max_partition_fetch_bytes=min(MAX_PARTITION_FETCH_BYTES, fetch_max),
            session_timeout_ms=timing.session_timeout_ms,
            heartbeat_interval_ms=timing.heartbeat_interval_ms,
            rebalance_timeout_ms=timing.rebalance_timeout_ms,
            max_poll_interval_ms=timing.max_poll_interval_ms,
            partition_assignment_strategy=assignors(settings.kafka_partition_assignor),
            **self._options,
        )
        pace_failed_metadata_refreshes(self._consumer._client)
        # the consumer's own `committed()` drops the metadata that carries the offset map
        self._admin = AIOKafkaAdminClient(client_id=f"{settings.group_id}-offsets", **self._options)
        pace_failed_metadata_refreshes(self._admin._client)

    async def start(self, listener: PartitionListener) -> None:
        """Connect and subscribe; joining the group happens on the first poll."""
        await self._admin.start()
        await self._consumer.start()
        self._consumer.subscribe([self.topic], listener=_Rebalance(self, listener))

    def hold(self, partitions: set[TopicPartition]) -> None:
        """Return no records of `partitions` for now."""
        self._consumer.pause(*partitions)

    async def committed(self, partitions: set[int]) -> dict[int, Committed | None]:
        """The group's committed position and metadata of each partition."""
        found = await self._admin.list_consumer_group_offsets(
            self._group, partitions=[TopicPartition(self.topic, p) for p in sorted(partitions)]
        )
        result: dict[int, Committed | None] = {}
        for partition in partitions:
            entry = found.get(TopicPartition(self.topic, partition))
            ok = entry is not None and entry.offset >= 0
            result[partition] = Committed(entry.offset, entry.metadata or "") if ok else None
        return result

    async def poll(self, max_wait: float) -> Mapping[int, Sequence[Record]]:
        """Records by partition, at most `MAX_POLL_RECORDS` in all."""
        batch = await self._consumer.getmany(timeout_ms=int(max_wait * 1000))
        return {tp.partition: records for tp, records in batch.items()}

    def pause(self, partition: int) -> None:
        """Stop fetching `partition` (if it is still assigned)."""
        tp = TopicPartition(self.topic, partition)
        if tp in self._consumer.assignment():
            self._consumer.pause(tp)

    def resume(self, partition: int) -> None:
        """Fetch `partition` again (if it is still assigned)."""
        tp = TopicPartition(self.topic, partition)
        if tp in self._consumer.assignment():
            self._consumer.resume(tp)

    async def position(self, partition: int) -> int | None:
        """Next offset to be returned, past transaction markers."""
        tp = TopicPartition(self.topic, partition)
        if tp not in self._consumer.assignment():
            return None
        position: int = await self._consumer.position(tp)
        return position

    def end_offset(self, partition: int) -> int | None:
        """The last stable offset from the latest fetch response."""
        offset: int | None = self._consumer.last_stable_offset(
            TopicPartition(self.topic, partition)
        )
        return offset

    async def commit(self, offsets: Mapping[int, Committed]) -> None:
        """Commit positions with their offset-map metadata."""
        request = {
            TopicPartition(self.topic, p): (c.offset, c.metadata) for p, c in offsets.items()
        }
        try:
            await self._consumer.commit(request)
        except (CommitFailedError, IllegalStateError) as error:
            raise CommitRejectedError(str(error)) from error
        except OffsetMetadataTooLargeError as error:
            raise MetadataTooLargeError(str(error)) from error

    async def close(self) -> None:
        """Leave the group (static members keep their assignment until the session ends)."""
        try:
            await stop_within(self._consumer.stop(), "consumer")
        finally:
            await stop_within(self._admin.close(), "admin")


def assignors(preferred: str) -> tuple[type[AbstractPartitionAssignor], ...]:
    """Every assignor, `preferred` first (the group uses the first one all members support).

    aiokafka's sticky assignor keeps the member's last assignment in class attributes; each
    consumer gets a subclass of its own, so two members in one process (tests, tools) do not
    report each other's partitions as their own.
    """
    own = {n: type(f"Own{a.__name__}", (a,), {}) for n, a in ASSIGNORS.items()}
    return (own[preferred], *(a for n, a in own.items() if n != preferred))


class AioOutputSink:
    """The worker's one producer: idempotent, acks from all in-sync replicas, a small linger
    (`CONVOAI_PRODUCER_LINGER_MS`).

    When the broker has lost the producer's sequence, the producer is replaced by a new one
    (a new producer id, numbering from zero) and the failed send is reported as transient, so
    the publisher sends the record again through the new producer.
    """

    def __init__(self, settings: Settings) -> None:
        self.max_record_bytes = settings.max_record_bytes
        self._settings = settings
        self._producer = self._new_producer()
        self._renewing = asyncio.Lock()  # also held by close(): no producer starts after it
        self._closed = False

    def _new_producer(self) -> AIOKafkaProducer:
        settings = self._settings
        producer = AIOKafkaProducer(
            acks="all",
            enable_idempotence=True,
            # aiokafka keeps one produce request per broker in flight and the records queued
            # meanwhile go together in the next one, so batches grow with the load even
            # without a linger; the linger makes them larger when results trickle in
            linger_ms=settings.producer_linger_ms,
            max_batch_size=PRODUCER_MAX_BATCH_BYTES,
            partitioner=default_partition,
            max_request_size=settings.max_record_bytes,
            client_id=f"{settings.group_id}-producer",
            **client_options(settings),
        )
        pace_failed_metadata_refreshes(producer.client)
        return producer

    async def start(self) -> None:
        """Connect."""
        await self._producer.start()

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> Awaitable[None]:
        """Queue the record; the result completes once acknowledged."""
        producer = self._producer
        try:
            ack = await producer.send(topic, value=value, key=key, headers=list(headers))
        except _REJECTIONS as error:
            raise RecordRejectedError(str(error)) from error
        return self._acknowledged(producer, ack)

    async def _acknowledged(self, producer: AIOKafkaProducer, ack: asyncio.Future[Any]) -> None:
        try:
            await ack
        except _REJECTIONS as error:
            raise RecordRejectedError(str(error)) from error
        except _SEQUENCE_LOST as error:
            await self._renew(producer, error)
            raise

    async def _renew(self, failed: AIOKafkaProducer, error: Exception) -> None:
        """Replace `failed` by a started new producer, once however many sends saw it fail."""
        async with self._renewing:
            if self._closed or self._producer is not failed:
                return  # closing, or another send's failure renewed it already
            renewed = self._new_producer()
            try:
                await renewed.start()
            except BaseException:
                await stop_within(renewed.stop(), "producer")
                raise  # Kafka unreachable: the next failed send tries again
            self._producer = renewed
            log.warning("producer_renewed", reason=repr(error))
        await stop_within(failed.stop(), "producer")

    async def close(self) -> None:
        """Flush and disconnect (also safe when never started)."""
        async with self._renewing:
            self._closed = True
            await stop_within(self._producer.stop(), "producer")


class AioTopicReader:
    """A group-less consumer of every partition of one topic."""

    def __init__(self, settings: Settings, topic: str, purpose: str) -> None:
        self._topic = topic
        self._consumer = AIOKafkaConsumer(
            topic,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id=f"{settings.group_id}-{purpose}",
            **client_options(settings),
        )
        pace_failed_metadata_refreshes(self._consumer._client)

    async def start(self) -> list[int]:
        """Connect; without a group aiokafka assigns every partition once it has metadata."""
        await self._consumer.start()
        return [tp.partition for tp in await all_partitions(self._consumer)]

    async def offsets(self) -> tuple[dict[int, int], dict[int, int]]:
        """(first, end) offsets of every partition."""
        tps = sorted(self._consumer.assignment())
        first = await self._consumer.beginning_offsets(tps)
        end = await self._consumer.end_offsets(tps)
        return (
            {tp.partition: offset for tp, offset in first.items()},
            {tp.partition: offset for tp, offset in end.items()},
        )

    def seek(self, partition: int, offset: int) -> None:
        """Read `partition` from `offset`."""
        self._consumer.seek(TopicPartition(self._topic, partition), offset)

    async def poll(self, max_wait: float) -> list[Record]:
        """The next records of any partition."""
        batch = await self._consumer.getmany(timeout_ms=int(max_wait * 1000))
        return [record for records in batch.values() for record in records]

    async def position(self, partition: int) -> int:
        """Next offset to read of `partition`."""
        position: int = await self._consumer.position(TopicPartition(self._topic, partition))
        return position

    async def close(self) -> None:
        """Disconnect."""
        await stop_within(self._consumer.stop(), "reader")


async def all_partitions(
    consumer: AIOKafkaConsumer, within: float = ASSIGNMENT_WAIT_SECONDS
) -> list[TopicPartition]:
    """The partitions of a group-less consumer's subscribed topics, once it has assigned them."""
    deadline = asyncio.get_running_loop().time() + within
    while not consumer.assignment():
        if asyncio.get_running_loop().time() > deadline:
            raise LookupError(
                f"no partitions for {sorted(consumer.subscription())} (missing topic?)"
            )
        await asyncio.sleep(0.05)
    return sorted(consumer.assignment())


class AioKafkaBackend:
    """Makes aiokafka clients configured from `Settings`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def command_source(self) -> AioCommandSource:
        """The group member on the command topic."""
        return AioCommandSource(self._settings)

    def output_sink(self) -> AioOutputSink:
        """The producer of all output records."""
        return AioOutputSink(self._settings)

    def topic_reader(self, topic: str, purpose: str) -> AioTopicReader:
        """A group-less reader of `topic`."""
        return AioTopicReader(self._settings, topic, purpose)

    async def wait_for_cluster(self, stop: asyncio.Event) -> bool:
        """Wait up to `CONVOAI_STARTUP_TIMEOUT_SECONDS` for the cluster (`worker.kafka.startup`)."""
        return await wait_for_cluster(self._settings, stop)

    async def ensure_topics(self) -> list[str]:
        """Create the missing topics (when allowed); return the names created."""
        return await ensure_topics(self._settings)
