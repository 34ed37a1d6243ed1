"""The consumer loop: fetch, schedule per key, pause when full, commit what is finished.

Rules it implements:
- Records are committed only once finished (their outputs acknowledged); the commit carries the
  offset map, and records a previous owner finished are skipped on assignment.
- Per-key order; different keys run concurrently under one in-flight bound; memory is bounded by
  pausing a partition with `partition_buffer` unfinished records (resumed below the low mark).
- Releasing partitions (revocation, shutdown): stop taking their records, drop queued work that
  has not started, give running work a grace period, then interrupt it (the processor decides
  per command what that means), commit, and only then let go.
- A key whose processing raised is blocked for good in this process; the worker then stops
  (`fatal`) so that the key's records are redelivered, in order, after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import structlog

from worker.errors import AbandonedError, FatalError
from worker.kafka.ports import CommandSource, Committed, Record
from worker.kafka.timing import GroupTiming
from worker.metrics import Metrics
from worker.observability.health import Health
from worker.pipeline import offset_map
from worker.pipeline.committer import Committer, PartitionState
from worker.pipeline.offsets import PartitionOffsets
from worker.pipeline.scheduler import Key, KeyedScheduler
from worker.settings import Settings

log = structlog.get_logger(__name__)

COMMIT_INTERVAL_SECONDS = 0.2  # bounds redelivery after a crash to ~0.2 s of finished work
POLL_TIMEOUT_SECONDS = 0.1
POLL_RETRY_SECONDS = 1.0
INTERRUPT_WAIT_SECONDS = 5.0  # for interrupted work to publish its `unknown` results
CATCH_UP_SECONDS = 5.0  # how long a new assignment waits for the dedupe memory


class Work:
    """A consumed record on its way through the pipeline."""

    __slots__ = ("abandoned", "record", "state")

    def __init__(self, record: Record, state: PartitionState) -> None:
        self.record = record
        self.state = state
        self.abandoned = False


class CommandConsumer:
    """Consumes the command topic and drives `process` for every record."""

    def __init__(
        self,
        source: CommandSource,
        process: Callable[[Work], Awaitable[None]],
        settings: Settings,
        metrics: Metrics,
        health: Health,
        *,
        catch_up: Callable[[float], Awaitable[bool]] | None = None,
    ) -> None:
        """`catch_up(seconds)` waits until the dedupe memory knows every result on Kafka."""
        self._source = source
        self._process = process
        self._settings = settings
        self._metrics = metrics
        self._health = health
        self._catch_up = catch_up
        self._revoke_grace = GroupTiming.from_settings(settings).revoke_grace_seconds
        self._scheduler: KeyedScheduler[Work] = KeyedScheduler(
            settings.max_in_flight, self._run, on_error=self._key_failed
        )
        self._committer = Committer(source, metrics, settings.offset_metadata_max_bytes)
        self._partitions: dict[int, PartitionState] = {}
        self._resume_below = int(settings.partition_buffer * settings.partition_resume_ratio)
        self._stop = asyncio.Event()
        self.fatal: FatalError | None = None
        metrics.in_flight_limit.set(settings.max_in_flight)
        # read at scrape time: nothing to update per command
        metrics.in_flight.set_function(lambda: self._scheduler.running)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Connect and subscribe (joining the group happens on the first poll)."""
        await self._source.start(self)

    def request_stop(self) -> None:
        """Stop fetching and drop work not started; `run` then releases every partition."""
        self._stop.set()
        self._scheduler.discard_queued(set(self._partitions))

    async def run(self) -> None:
        """Fetch and dispatch until stopped; then drain, interrupt and commit everything."""
        while not self._stop.is_set():
            try:
                batch = await self._source.poll(POLL_TIMEOUT_SECONDS)
            except Exception as error:  # noqa: BLE001 - the port: poll failures are transient
                log.warning("poll_failed", error=repr(error), retry_in_seconds=POLL_RETRY_SECONDS)
                await asyncio.sleep(POLL_RETRY_SECONDS)
                continue
            for partition, records in batch.items():
                self._dispatch(partition, records)
        await self._release(self._settings.drain_grace_seconds, "shutdown", set(self._partitions))

    async def abort(self) -> None:
        """Cancel all work at once, publishing nothing more (forced exit, failed startup)."""
        await self._scheduler.cancel(None)

    async def close(self) -> None:
        """Leave the group."""
        await self._source.close()

    async def commit_loop(self) -> None:
        """Until cancelled: commit finished work and report lag (a supervised task)."""
        while True:
            await asyncio.sleep(COMMIT_INTERVAL_SECONDS)
            states = [s for s in self._partitions.values() if not s.released]
            await self._settle_idle(states)
            await self._committer.commit(states)
            self._observe(states)

    @property
    def buffered(self) -> int:
        """Records consumed and not yet finished, over all partitions (the memory bound)."""
        return sum(state.offsets.outstanding for state in self._partitions.values())

    @property
    def paused_partitions(self) -> int:
        """Partitions paused for back-pressure right now."""
        return sum(state.paused for state in self._partitions.values())

    # ------------------------------------------------------------------ assignment
    async def assigned(self, partitions: Mapping[int, Committed | None]) -> None:
        """New partitions: track them from their committed position and offset map."""
        for partition, committed in partitions.items():
            self._partitions[partition] = PartitionState(
                partition, self._offsets(partition, committed), committed
            )
        self._metrics.rebalances.labels("assigned").inc()
        self._health.group_state(joined=True, assigned_partitions=len(self._partitions))
        log.info("partitions_assigned", partitions=sorted(partitions))
        if self._catch_up is not None and not await self._catch_up(CATCH_UP_SECONDS):
            log.warning("dedupe_memory_behind", waited_seconds=CATCH_UP_SECONDS)

    def _offsets(self, partition: int, committed: Committed | None) -> PartitionOffsets:
        if committed is None:
            return PartitionOffsets()
        try:
            finished = offset_map.decode(committed.offset, committed.metadata)
        except offset_map.OffsetMapError as error:
            log.warning("offset_map_ignored", partition=partition, error=str(error))
            finished = set()
        return PartitionOffsets(committed.offset, finished)

    async def revoked(self, partitions: set[int]) -> None:
        """Partitions taken away: finish or interrupt their work within the grace, commit."""
        self._metrics.rebalances.labels("revoked").inc()
        await self._release(self._revoke_grace, "revoked", partitions)
        for partition in partitions & set(self._partitions):
            del self._partitions[partition]
            labels = (self._source.topic, str(partition))
            for gauge in (
                self._metrics.partition_paused,
                self._metrics.lag_records,
                self._metrics.lag_seconds,
            ):
                with contextlib.suppress(KeyError):  # never set for this partition
                    gauge.remove(*labels)
        self._health.group_state(joined=True, assigned_partitions=len(self._partitions))

    async def _release(self, grace: float, why: str, partitions: set[int]) -> None:
        """Stop the partitions' work (drop queued, wait, interrupt) and commit it."""
        states = [
            s for p in partitions if (s := self._partitions.get(p)) is not None and not s.released
        ]
        if not states:
            return
        for state in states:
            state.released = True
        chosen = {state.partition for state in states}
        dropped = self._scheduler.discard_queued(chosen)
        interrupted = 0
        if not await self._scheduler.wait(chosen, grace):
            interrupted = self._scheduler.abandon(chosen)
            log.warning("grace_exceeded", why=why, grace_seconds=grace, interrupted=interrupted)
            if not await self._scheduler.wait(chosen, INTERRUPT_WAIT_SECONDS):
                await self._scheduler.cancel(chosen)
        committed = await self._committer.commit(states)
        log.info(
            "partitions_released",
            why=why,
            partitions=sorted(chosen),
            dropped_queued=dropped,
            interrupted=interrupted,
            committed=committed,
        )

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, partition: int, records: Sequence[Record]) -> None:
        state = self._partitions.get(partition)
        if state is None or state.released or self._stop.is_set():
            return  # revoked or stopping meanwhile; the next owner reads these records again
        offsets = state.offsets
        submit = self._scheduler.submit
        for record in records:
            if not offsets.consumed(record.offset, record.timestamp / 1000):
                self._metrics.records_skipped.inc()  # a previous owner finished it
                continue
            key: Key = (
                partition,
                record.key if record.key is not None else ("offset", record.offset),
            )
            submit(key, Work(record, state))
        if not state.paused and offsets.outstanding >= self._settings.partition_buffer:
            self._source.pause(partition)
            state.paused = True
            self._metrics.partition_paused.labels(self._source.topic, str(partition)).set(1)

    async def _run(self, work: Work) -> None:
        try:
            await self._process(work)
        except AbandonedError:
            self._metrics.interrupted("redelivered").inc()
            raise
        state = work.state
        if self._partitions.get(state.partition) is not state:
            # the partition was revoked (and perhaps assigned again) meanwhile: this record
            # belongs to an earlier assignment, whose offsets must not mark the new one's done
            return
        state.offsets.finished(work.record.offset)
        self._health.progress()
        if state.paused and state.offsets.outstanding <= self._resume_below:
            self._source.resume(state.partition)
            state.paused = False
            self._metrics.partition_paused.labels(self._source.topic, str(state.partition)).set(0)

    def _key_failed(self, error: BaseException, work: Work) -> None:
        record = work.record
        message = (
            f"processing the record at partition {record.partition} offset {record.offset} "
            f"raised {error!r}; its key is stopped and the worker exits so that the record "
            "is redelivered in order after a restart"
        )
        log.error("worker_fatal", reason=message, exc_info=error)
        if self.fatal is None:
            self.fatal = FatalError(message)
        self._stop.set()

    # ------------------------------------------------------------------ commits and lag
    async def _settle_idle(self, states: list[PartitionState]) -> None:
        """Partitions with nothing unfinished commit the consumer's position.

        That position may be past the last record (a transaction marker follows it); committing
        it keeps lag at zero for an idle partition of a transactional producer.
        """
        for state in states:
            if state.offsets.idle:
                position = await self._source.position(state.partition)
                if position is not None:
                    state.offsets.skip_to(position)

    def _observe(self, states: list[PartitionState]) -> None:
        now = time.time()
        backlog = 0
        for state in states:
            labels = (self._source.topic, str(state.partition))
            offsets = state.offsets
            end = self._source.end_offset(state.partition)
            position = offsets.position
            backlog += offsets.outstanding
            if end is not None and position is not None:
                waiting = max(0, end - position)
                self._metrics.lag_records.labels(*labels).set(waiting)
                backlog += max(0, waiting - offsets.outstanding)
            oldest = offsets.oldest_timestamp()
            self._metrics.lag_seconds.labels(*labels).set(max(0.0, now - oldest) if oldest else 0.0)
        self._health.backlog(backlog)
