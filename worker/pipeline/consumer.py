"""The consumer loop: fetch in batches, schedule per key, pause when full, commit what is done.

Rules it implements (design §4): manual commits of the highest contiguous finished offset per
partition; per-key order; bounded memory (a partition is paused when `partition_buffer` of its
records are unfinished and resumed below the low-water mark); on revocation, stop the revoked
partitions' queued work, give running commands a bounded time to finish, commit, and release.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from worker.metrics import Metrics
from worker.observability.health import Health
from worker.pipeline.offsets import PartitionOffsets
from worker.pipeline.processor import Job
from worker.pipeline.scheduler import Key, KeyedScheduler
from worker.settings import Settings

log = structlog.get_logger(__name__)

COMMIT_INTERVAL_SECONDS = 0.2  # bounds redelivery after a crash to ~0.2 s of finished work
FETCH_TIMEOUT_MS = 100
REVOKE_GRACE_SECONDS = 10.0  # must stay well below max.poll.interval (rebalance timeout)
MAX_POLL_RECORDS = 500  # per fetch; a partition can overshoot its buffer by one batch


class _PartitionState:
    __slots__ = ("committed", "offsets", "paused", "tp")

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.offsets = PartitionOffsets()
        self.paused = False
        self.committed: int | None = None


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: CommandConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._owner.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._owner.partitions_assigned(assigned)


class CommandConsumer:
    """Consumes the command topic and drives `process` for every record."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        health: Health,
        process: Callable[[Job], Awaitable[None]],
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._health = health
        self._process = process
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=settings.group_id,
            group_instance_id=settings.group_instance_id or None,
            client_id=settings.group_instance_id or f"{settings.group_id}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # commands produced before the first start still run
            max_poll_records=MAX_POLL_RECORDS,
            fetch_max_wait_ms=FETCH_TIMEOUT_MS,
        )
        self._scheduler: KeyedScheduler[tuple[_PartitionState, Job]] = KeyedScheduler(
            settings.max_in_flight, self._run_job, on_error=self._fail
        )
        self._partitions: dict[int, _PartitionState] = {}
        self._resume_below = int(settings.partition_buffer * settings.partition_resume_ratio)
        self._stop = asyncio.Event()
        self._failure: BaseException | None = None
        metrics.in_flight_limit.set(settings.max_in_flight)
        # read at scrape time: nothing to update per command
        metrics.in_flight.set_function(lambda: self._scheduler.running)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Connect and subscribe (joining the group happens on the first fetch)."""
        await self._consumer.start()
        self._consumer.subscribe([self._settings.topic_commands], listener=_Listener(self))

    def request_stop(self) -> None:
        """Stop fetching; `run` then drains and returns."""
        self._stop.set()

    async def run(self) -> None:
        """Fetch and dispatch until stopped, then drain within the grace period and commit."""
        committer = asyncio.create_task(self._commit_loop(), name="committer")
        try:
            while not self._stop.is_set():
                batch = await self._consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS)
                for tp, records in batch.items():
                    self._dispatch(tp, records)
        finally:
            committer.cancel()
            await asyncio.gather(committer, return_exceptions=True)
        await self._drain()
        if self._failure is not None:
            raise RuntimeError(
                "command processing failed; unfinished records were not committed"
            ) from self._failure

    async def close(self) -> None:
        """Leave the group (static members keep their assignment until the session expires)."""
        await self._consumer.stop()

    @property
    def buffered(self) -> int:
        """Records consumed and not yet finished, over all partitions (the memory bound)."""
        return sum(state.offsets.outstanding for state in self._partitions.values())

    @property
    def paused_partitions(self) -> int:
        """Partitions paused for back-pressure right now."""
        return sum(state.paused for state in self._partitions.values())

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        state = self._partitions.get(tp.partition)
        if state is None:
            return  # revoked while the batch was in flight; the new owner reads it again
        offsets = state.offsets
        submit = self._scheduler.submit
        for record in records:
            timestamp = record.timestamp / 1000
            offsets.consumed(record.offset, timestamp)
            key: Key = (
                tp.partition,
                record.key if record.key is not None else ("offset", record.offset),
            )
            job = Job(
                tp.topic,
                tp.partition,
                record.offset,
                record.key,
                record.value,
                record.headers,
                timestamp,
            )
            submit(key, (state, job))
        if not state.paused and offsets.outstanding >= self._settings.partition_buffer:
            self._consumer.pause(tp)
            state.paused = True
            self._metrics.partition_paused.labels(tp.topic, str(tp.partition)).set(1)

    async def _run_job(self, item: tuple[_PartitionState, Job]) -> None:
        state, job = item
        await self._process(job)
        if self._partitions.get(job.partition) is not state:
            # the partition was revoked (and perhaps assigned again) meanwhile: this record
            # belongs to an earlier assignment, whose offsets must not mark the new one's done
            return
        state.offsets.finished(job.offset)
        if state.paused and state.offsets.outstanding <= self._resume_below:
            self._consumer.resume(state.tp)
            state.paused = False
            self._metrics.partition_paused.labels(state.tp.topic, str(state.tp.partition)).set(0)

    def _fail(self, error: BaseException) -> None:
        log.error("command_processing_failed", error=repr(error))
        if self._failure is None:
            self._failure = error
        self._stop.set()

    # ------------------------------------------------------------------ commits
    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(COMMIT_INTERVAL_SECONDS)
            await self._commit(set(self._partitions))
            self._observe_lag()

    async def _commit(self, partitions: set[int]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for p in partitions:
            state = self._partitions.get(p)
            if state is None:
                continue
            position = state.offsets.position
            if position is not None and position != state.committed:
                offsets[state.tp] = position
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as error:
            # e.g. the group rebalanced and these partitions may belong to someone else now
            self._metrics.commits.labels("failed").inc()
            log.warning(
                "commit_failed",
                error=repr(error),
                partitions=sorted(tp.partition for tp in offsets),
            )
            return
        self._metrics.commits.labels("ok").inc()
        for tp, position in offsets.items():
            state = self._partitions.get(tp.partition)
            if state is not None:
                state.committed = position
        self._health.progress()

    def _observe_lag(self) -> None:
        now = time.time()
        total = 0
        for state in self._partitions.values():
            tp = state.tp
            labels = (tp.topic, str(tp.partition))
            highwater = self._consumer.highwater(tp)
            position = state.committed if state.committed is not None else state.offsets.position
            if highwater is not None and position is not None:
                lag = max(0, highwater - position)
                total += lag
                self._metrics.lag_records.labels(*labels).set(lag)
            oldest = state.offsets.oldest_timestamp()
            self._metrics.lag_seconds.labels(*labels).set(max(0.0, now - oldest) if oldest else 0.0)
        self._health.lag(total)

    # ------------------------------------------------------------------ rebalancing
    def partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """New partitions: start tracking them (fetching resumes at their committed offsets)."""
        for tp in assigned:
            self._partitions[tp.partition] = _PartitionState(tp)
        self._metrics.rebalances.labels("assigned").inc()
        self._health.group_state(joined=True, assigned_partitions=len(self._partitions))
        log.info("partitions_assigned", partitions=sorted(tp.partition for tp in assigned))

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Finish or abandon the revoked partitions' work within a bound, commit, release."""
        partitions = {tp.partition for tp in revoked} & set(self._partitions)
        self._metrics.rebalances.labels("revoked").inc()
        if partitions:
            dropped = self._scheduler.discard_queued(partitions)
            finished = await self._scheduler.wait(partitions, REVOKE_GRACE_SECONDS)
            if not finished:
                await self._scheduler.cancel(partitions)
            await self._commit(partitions)
            log.info(
                "partitions_revoked",
                partitions=sorted(partitions),
                dropped_queued=dropped,
                abandoned_running=not finished,
            )
        for p in partitions:
            state = self._partitions.pop(p)
            labels = (state.tp.topic, str(p))
            for gauge in (
                self._metrics.partition_paused,
                self._metrics.lag_records,
                self._metrics.lag_seconds,
            ):
                with contextlib.suppress(KeyError):  # never set for this partition
                    gauge.remove(*labels)
        self._health.group_state(joined=True, assigned_partitions=len(self._partitions))

    # ------------------------------------------------------------------ shutdown
    async def _drain(self) -> None:
        grace = self._settings.drain_grace_seconds
        finished = await self._scheduler.wait(None, grace)
        if not finished:
            log.warning(
                "drain_grace_exceeded", grace_seconds=grace, running=self._scheduler.running
            )
            await self._scheduler.cancel(None)
        await self._commit(set(self._partitions))
