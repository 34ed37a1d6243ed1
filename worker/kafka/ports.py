"""What the pipeline needs from Kafka, and nothing more.

Three ports: `CommandSource` (a consumer-group member on the command topic), `OutputSink`
(one producer for every output record) and `TopicReader` (a group-less reader of a whole topic,
for the followers that rebuild memory from the state and results topics). `worker.kafka.aio`
implements them with aiokafka, `worker.kafka.memory` in memory; the same behaviour suite runs
on both (`tests/ports/test_kafka_ports.py`), so the pipeline's tests on the in-memory broker say
something about the real one.

Partitions are plain ints: the source reads one topic, a reader one topic, and the sink is told
the topic per record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from typing import NamedTuple, Protocol

Headers = Sequence[tuple[str, bytes]]

MAX_FETCH_BYTES = 52_428_800  # aiokafka's and Kafka's default fetch.max.bytes
FETCHES_PER_BUDGET = 4


def fetch_bytes(buffer_max_bytes: int) -> int:
    """The most record bytes one poll returns (a larger first record still comes whole): a
    quarter of the worker's byte budget, so what a poll adds beyond the budget stays small."""
    return min(MAX_FETCH_BYTES, buffer_max_bytes // FETCHES_PER_BUDGET)


class Record(Protocol):
    """One consumed record, read-only. aiokafka's `ConsumerRecord` is one as it is."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Headers: ...
    @property
    def timestamp(self) -> int:
        """Milliseconds since the epoch, as Kafka stores it."""


class Committed(NamedTuple):
    """A committed position (the next offset to read) and its metadata string."""

    offset: int
    metadata: str = ""


class RecordRejectedError(Exception):
    """The broker or the producer refused this record for good (too large, invalid).

    Sending it again cannot succeed; every other send failure is treated as transient.
    """


class CommitRejectedError(Exception):
    """The group no longer lets this member commit these partitions (it was rebalanced)."""


class MetadataTooLargeError(Exception):
    """The broker refused a commit because its metadata exceeds `offset.metadata.max.bytes`."""


class PartitionListener(Protocol):
    """Told about assignment changes; the source awaits both calls before going on."""

    async def assigned(self, partitions: set[int]) -> None:
        """New partitions. They arrive paused: `poll` returns none of their records until
        `resume`. Must not be slow: the real client sends no heartbeats meanwhile."""

    async def revoked(self, partitions: set[int]) -> None:
        """Partitions about to be taken away; commit what is finished before returning.

        The rebalance waits for this (up to the rebalance timeout, then the member is
        expelled); heartbeats go on meanwhile.
        """


class CommandSource(Protocol):
    """A member of the consumer group that reads the command topic."""

    topic: str

    async def start(self, listener: PartitionListener) -> None:
        """Connect and subscribe; partitions arrive through `listener`."""

    async def poll(self, max_wait: float) -> Mapping[int, Sequence[Record]]:
        """Records of assigned, unpaused partitions, waiting up to `max_wait` seconds."""

    def pause(self, partition: int) -> None:
        """Stop returning records of `partition` until resumed."""

    def resume(self, partition: int) -> None:
        """Return records of `partition` again."""

    async def position(self, partition: int) -> int | None:
        """The offset of the next record `poll` would return, when known."""

    async def committed(self, partitions: set[int]) -> dict[int, Committed | None]:
        """The group's committed position and metadata of each partition (None: none yet).

        One attempt: raises when the lookup fails (the caller retries and bounds it).
        """

    def end_offset(self, partition: int) -> int | None:
        """The last stable offset seen by the latest fetch (the lag reference), when known."""

    async def commit(self, offsets: Mapping[int, Committed]) -> None:
        """Commit positions with metadata.

        Raises `CommitRejectedError` after a rebalance, `MetadataTooLargeError` when the
        broker's metadata limit is smaller than the metadata; anything else is transient.
        """

    async def close(self) -> None:
        """Leave the group and disconnect."""


class OutputSink(Protocol):
    """Sends records to any topic; an idempotent producer with acks from all replicas."""

    max_record_bytes: int

    async def start(self) -> None:
        """Connect."""

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> Awaitable[None]:
        """Queue a record; the returned awaitable completes when Kafka acknowledged it.

        Raises, or the awaitable raises, `RecordRejectedError` when the record can never be
        accepted; any other exception is transient.
        """

    async def close(self) -> None:
        """Flush what is queued and disconnect."""


class TopicReader(Protocol):
    """Reads every partition of one topic, without a group and without committing."""

    async def start(self) -> list[int]:
        """Connect and assign every partition; returns the partitions."""

    async def offsets(self) -> tuple[dict[int, int], dict[int, int]]:
        """(first, end) offset of every partition right now."""

    def seek(self, partition: int, offset: int) -> None:
        """Read `partition` from `offset` next."""

    async def poll(self, max_wait: float) -> list[Record]:
        """The next records of any partition, waiting up to `max_wait` seconds."""

    async def position(self, partition: int) -> int:
        """The offset of the next record `poll` would return for `partition`."""

    async def close(self) -> None:
        """Disconnect."""


class KafkaBackend(Protocol):
    """Makes the clients of one worker; the composition root picks aiokafka or memory."""

    def command_source(self) -> CommandSource:
        """The group member on the command topic."""

    def output_sink(self) -> OutputSink:
        """The producer of all output records."""

    def topic_reader(self, topic: str, purpose: str) -> TopicReader:
        """A group-less reader of `topic` (`purpose` names the client in broker logs)."""

    async def wait_for_cluster(self, stop: asyncio.Event) -> bool:
        """Wait until the cluster answers (True), or `stop` is set first (False); raise when
        it does not answer in time."""

    async def ensure_topics(self) -> list[str]:
        """Create missing topics when allowed; return the names created."""
