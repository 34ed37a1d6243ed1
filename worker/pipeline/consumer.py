"""The consumer loop: fetch, schedule per key, hold partitions when full, commit what is finished,
and one lifecycle for every way a partition is let go.

A partition moves opening → running → releasing → released:

- opening: assigned, held (no records fetched) until its committed position and offset map are
  read and the dedupe memory has caught up with the results topic. Both are retried in the
  background within `CONVOAI_PARTITION_OPEN_TIMEOUT_SECONDS`; the assignment callback itself
  does nothing slow (aiokafka sends no heartbeats while it runs). A partition that cannot be
  opened is not sat on: the member stops and exits non-zero, so the group gives it to another.
- running: records are dispatched per key, and committed once finished (outputs acknowledged),
  with the offset map. It is held (paused) while its buffer is full, while the worker's buffered
  bytes are at their budget, or while its offset map nears the metadata limit.
- releasing: a revoke, the drain at shutdown, or both. Queued work is dropped; running work gets
  the grace, then is interrupted (the processor gives calls that may have reached the API their
  `unknown` result and publishes it within the interrupt wait), then killed; then what finished is
  committed within the commit deadline. The deadlines add up inside the rebalance timeout
  (`worker.deadlines`).

A release is one task. A request that arrives while another release of the same partitions is in
progress joins it, bounded by the tighter deadline: a rebalance during the drain, a SIGTERM during
a revoke. Nothing returns early because someone else already started, and nothing cancels what
another waits for. A forced exit (`abort`) kills all work at once and publishes and commits
nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

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
OPEN_ATTEMPT_SECONDS = 10.0  # one lookup or catch-up attempt while opening a partition
OPEN_BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0)
RECORD_OVERHEAD_BYTES = 512  # the Python objects around a buffered record's bytes
MAP_HOLD_SHARE = 0.75  # hold a partition whose offset map passes this share of the budget
MAP_RESUME_SHARE = 0.5

OPENING, RUNNING, RELEASING, RELEASED = "opening", "running", "releasing", "released"

T = TypeVar("T")


class Work:
    """A consumed record on its way through the pipeline."""

    __slots__ = ("abandoned", "interruptible", "killed", "record", "state")

    def __init__(self, record: Record, state: PartitionState) -> None:
        self.record = record
        self.state = state
        self.abandoned = False
        self.killed = False
        self.interruptible = True


class Release:
    """One release in progress: its partitions, why, and deadlines others may tighten."""

    def __init__(self, partitions: set[int], why: str, grace_end: float) -> None:
        self.partitions = partitions
        self.why = why
        self.grace_end = grace_end
        self.interrupt_end: float | None = None  # set when the grace is over
        self.forced = False
        self.task: asyncio.Task[None] | None = None
        self._changed: asyncio.Future[None] | None = None

    def tighten(self, grace_end: float) -> None:
        """End the grace at `grace_end` if that is earlier."""
        if grace_end < self.grace_end:
            self.grace_end = grace_end
            self._wake()

    def force(self) -> None:
        """End every phase now, and skip interrupting and committing (a forced exit)."""
        self.forced = True
        self.grace_end = float("-inf")
        self.interrupt_end = float("-inf")
        self._wake()

    def changed(self) -> asyncio.Future[None]:
        """A future done at the next `tighten` or `force`."""
        if self._changed is None or self._changed.done():
            self._changed = asyncio.get_running_loop().create_future()
        return self._changed

    def _wake(self) -> None:
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)


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
        self._deadlines = GroupTiming.from_settings(settings).deadlines
        self._scheduler: KeyedScheduler[Work] = KeyedScheduler(
            settings.max_in_flight, self._run, on_error=self._key_failed
        )
        self._committer = Committer(
            source, metrics, settings.offset_metadata_max_bytes, self._deadlines.commit
        )
        self._partitions: dict[int, PartitionState] = {}
        self._releases: list[Release] = []
        self._openers: set[asyncio.Task[None]] = set()
        self._resume_below = int(settings.partition_buffer * settings.partition_resume_ratio)
        self._budget = settings.buffer_max_bytes
        self._over_budget = False
        self._stop = asyncio.Event()
        self._forced = False
        self.fatal: FatalError | None = None
        metrics.in_flight_limit.set(settings.max_in_flight)
        metrics.buffer_limit_bytes.set(self._budget)
        # read at scrape time: nothing to update per command
        metrics.in_flight.set_function(lambda: self._scheduler.running)
        metrics.buffered_bytes.set_function(lambda: self.buffered_bytes)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Connect and subscribe (joining the group happens on the first poll)."""
        await self._source.start(self)

    def request_stop(self) -> None:
        """Stop fetching and begin draining every partition; `run` returns once it is done."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._begin(self._running_partitions(), self._deadlines.drain_grace, "shutdown")

    async def run(self) -> None:
        """Fetch and dispatch until stopped; then wait for every release to end."""
        stopping = asyncio.ensure_future(self._stop.wait())
        fetch: asyncio.Future[None] | None = None
        try:
            while not self._stop.is_set():
                # a poll waits for the next assignment while the group rebalances, whatever its
                # timeout: a stop must not wait for that
                fetch = asyncio.ensure_future(self._fetch())
                await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not fetch.done():
                    break
                try:
                    fetch.result()
                except Exception as error:  # noqa: BLE001 - the port: poll failures are transient
                    log.warning(
                        "poll_failed", error=repr(error), retry_in_seconds=POLL_RETRY_SECONDS
                    )
                    await asyncio.sleep(POLL_RETRY_SECONDS)
        finally:
            stopping.cancel()
            if fetch is not None:
                fetch.cancel()  # done already, or a poll nobody waits for any more
        await self.release(set(self._partitions), self._deadlines.drain_grace, "shutdown")

    async def _fetch(self) -> None:
        """One poll, and the dispatch of what it returned in the same step.

        The source's position moves past what a poll returns, and the commit loop takes an
        idle partition's position as finished (`_settle_idle`): nothing may run between the
        two, or records polled but not yet registered would be committed unrun.
        """
        batch = await self._source.poll(POLL_TIMEOUT_SECONDS)
        for partition, records in batch.items():
            self._dispatch(partition, records)
        self._apply_budget()

    async def abort(self) -> None:
        """Forced exit (or a failed start): kill all work now, publish and commit nothing more."""
        self._forced = True
        self._stop.set()
        for release in self._releases:
            release.force()
        for opener in self._openers:
            opener.cancel()
        try:
            async with asyncio.timeout(self._deadlines.kill_wait):
                await self._scheduler.close()
        except TimeoutError:
            log.warning("abort_slow", waited_seconds=self._deadlines.kill_wait)

    async def close(self) -> None:
        """Leave the group."""
        await self._source.close()

    async def commit_loop(self) -> None:
        """Until cancelled: commit finished work, hold partitions whose offset maps grow too
        large, and report lag (a supervised task)."""
        while True:
            await asyncio.sleep(COMMIT_INTERVAL_SECONDS)
            states = [s for s in self._partitions.values() if s.running]
            await self._settle_idle(states)
            await self._committer.commit(states)
            self._limit_maps(states)
            self._observe(states)

    @property
    def buffered(self) -> int:
        """Records consumed and not yet finished, over all partitions."""
        return sum(state.offsets.outstanding for state in self._partitions.values())

    @property
    def buffered_bytes(self) -> int:
        """Bytes of those records: what the byte budget bounds."""
        return sum(state.offsets.outstanding_bytes for state in self._partitions.values())

    @property
    def paused_partitions(self) -> int:
        """Partitions held right now, for any reason."""
        return sum(bool(state.holds) for state in self._partitions.values())

    # ------------------------------------------------------------------ assignment
    async def assigned(self, partitions: set[int]) -> None:
        """New partitions, held until opened in the background (this returns at once)."""
        fresh = []
        for partition in partitions:
            current = self._partitions.get(partition)
            if current is not None and current.phase in (RUNNING, RELEASING):
                log.warning("partition_assigned_twice", partition=partition)
                continue
            state = PartitionState(partition, holds={"opening"})
            self._partitions[partition] = state
            fresh.append(state)
        self._metrics.rebalances.labels("assigned").inc()
        self._health.group_state(joined=True, assigned_partitions=len(self._partitions))
        log.info("partitions_assigned", partitions=sorted(partitions))
        if fresh and not self._stop.is_set():
            opener = asyncio.create_task(self._open(fresh), name="partition-opener")
            self._openers.add(opener)
            opener.add_done_callback(self._openers.discard)

    async def _open(self, states: list[PartitionState]) -> None:
        """Read the committed positions and catch the dedupe memory up, then let records in."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.partition_open_timeout_seconds
        partitions = {state.partition for state in states}
        try:
            committed = await self._retrying(
                "committed_offsets", lambda _: self._source.committed(partitions), deadline
            )
            for state in states:
                state.committed = committed.get(state.partition)
                state.offsets = self._offsets(state.partition, state.committed)
            if self._catch_up is not None:
                await self._retrying("dedupe_catch_up", self._caught_up, deadline)
        except Exception as error:  # noqa: BLE001 - every way of failing ends the same
            self._open_failed(states, error)
            return
        opened = []
        for state in states:
            if self._partitions.get(state.partition) is state and state.phase == OPENING:
                state.phase = RUNNING
                if self._over_budget:
                    self._hold(state, "memory")
                self._unhold(state, "opening")
                opened.append(state.partition)
        self._metrics.partition_opens.labels("ok").inc(len(opened))
        log.info("partitions_opened", partitions=sorted(opened))

    async def _caught_up(self, within: float) -> None:
        assert self._catch_up is not None  # noqa: S101 - only called when there is one
        if not await self._catch_up(within):
            raise TimeoutError(f"the dedupe memory did not catch up within {within:g} s")

    async def _retrying(
        self, step: str, attempt: Callable[[float], Awaitable[T]], deadline: float
    ) -> T:
        """`attempt(seconds)` until it succeeds, each bounded, with backoff, until `deadline`."""
        loop = asyncio.get_running_loop()
        for tries in range(1, 1_000_000):
            within = min(OPEN_ATTEMPT_SECONDS, deadline - loop.time())
            try:
                async with asyncio.timeout(within):
                    return await attempt(within)
            except Exception as error:  # retried below, or raised at the deadline
                pause = OPEN_BACKOFF_SECONDS[min(tries, len(OPEN_BACKOFF_SECONDS)) - 1]
                if loop.time() + pause >= deadline:
                    raise
                self._metrics.partition_opens.labels("retried").inc()
                log.warning("partition_open_retry", step=step, error=repr(error), pause=pause)
                await asyncio.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def _open_failed(self, states: list[PartitionState], error: BaseException) -> None:
        """Partitions that could not be opened: leave the group, loudly, rather than sit on
        them (another member, or this one restarted, takes them)."""
        stuck = [s.partition for s in states if self._partitions.get(s.partition) is s]
        stuck = [p for p in stuck if self._partitions[p].phase == OPENING]
        if not stuck:
            return  # revoked meanwhile: nothing is held up
        self._metrics.partition_opens.labels("failed").inc(len(stuck))
        message = (
            f"partitions {stuck} could not be opened within "
            f"{self._settings.partition_open_timeout_seconds:g} s ({error!r}); the worker "
            "leaves the group so that another member takes them"
        )
        log.error("partition_open_failed", reason=message)
        self._fail(FatalError(message))

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
        """Partitions taken away: release them (or join their release), then forget them."""
        self._metrics.rebalances.labels("revoked").inc()
        await self.release(partitions, self._deadlines.revoke_grace, "revoked")
        for partition in partitions & set(self._partitions):
            if self._partitions[partition].phase != RELEASED:
                continue  # assigned again meanwhile
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

    # ------------------------------------------------------------------ releases
    async def release(self, partitions: set[int], grace: float, why: str) -> None:
        """Release `partitions` within `grace` (then interrupt, kill, commit), joining any
        release of them already in progress, which then ends its grace no later than ours."""
        grace_end = asyncio.get_running_loop().time() + grace
        joined = []
        for release in self._releases:
            if release.partitions & partitions:
                release.tighten(grace_end)
                joined.append(release)
        fresh = self._begin(partitions, grace, why)
        if fresh is not None:
            joined.append(fresh)
        for release in joined:
            assert release.task is not None  # noqa: S101 - set by `_begin`
            await asyncio.shield(release.task)

    def _running_partitions(self) -> set[int]:
        return {p for p, state in self._partitions.items() if state.phase in (OPENING, RUNNING)}

    def _begin(self, partitions: set[int], grace: float, why: str) -> Release | None:
        """Start releasing those of `partitions` nobody releases yet; partitions still opening
        have nothing to release."""
        chosen = set()
        for partition in partitions:
            state = self._partitions.get(partition)
            if state is None:
                continue
            if state.phase == OPENING:
                state.phase = RELEASED
            elif state.phase == RUNNING:
                state.phase = RELEASING
                chosen.add(partition)
        if not chosen:
            return None
        release = Release(chosen, why, asyncio.get_running_loop().time() + grace)
        if self._forced:
            release.force()
        release.task = asyncio.create_task(self._perform(release), name=f"release-{why}")
        self._releases.append(release)
        release.task.add_done_callback(lambda _: self._releases.remove(release))
        return release

    async def _perform(self, release: Release) -> None:
        """Drop, wait, interrupt, kill, commit: each phase within its deadline."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        chosen = release.partitions
        states = [self._partitions[p] for p in sorted(chosen)]
        dropped = self._scheduler.discard_queued(chosen)
        ending, interrupted, killed = "finished", 0, 0
        if not await self._ended(release, lambda: release.grace_end):
            ending = "interrupted"
            if not release.forced:
                interrupted = self._scheduler.abandon(chosen)
                release.interrupt_end = loop.time() + self._deadlines.interrupt_wait
            if not await self._ended(release, lambda: release.interrupt_end or 0.0):
                ending = "killed"
                workers = self._scheduler.kill(chosen)
                killed = len(workers)
                self._metrics.interrupted("killed").inc(killed)
                if workers:
                    await asyncio.wait(workers, timeout=self._deadlines.kill_wait)
        committed = False if release.forced else await self._committer.commit(states)
        for state in states:
            state.phase = RELEASED
        self._metrics.releases.labels(release.why, ending).observe(loop.time() - started)
        report = log.warning if ending == "killed" else log.info
        report(
            "partitions_released",
            why=release.why,
            partitions=sorted(chosen),
            ending=ending,
            dropped_queued=dropped,
            interrupted=interrupted,
            killed=killed,
            committed=committed,
            seconds=round(loop.time() - started, 3),
        )

    async def _ended(self, release: Release, deadline: Callable[[], float]) -> bool:
        """Wait until no work of the release's partitions runs; False once `deadline()` (which
        may move earlier meanwhile) has passed."""
        loop = asyncio.get_running_loop()
        while True:
            ended = self._scheduler.ended(release.partitions)
            if ended is None:
                return True
            remaining = deadline() - loop.time()
            if remaining <= 0:
                return False
            waiting: set[asyncio.Future[Any]] = {ended, release.changed()}
            await asyncio.wait(waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            if ended.done():
                return True

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, partition: int, records: Sequence[Record]) -> None:
        state = self._partitions.get(partition)
        if state is None or not state.running or self._stop.is_set():
            return  # released or stopping meanwhile; the next owner reads these records again
        offsets = state.offsets
        submit = self._scheduler.submit
        now = time.time()
        for record in records:
            stamp = record.timestamp / 1000 if record.timestamp > 0 else now
            if not offsets.consumed(record.offset, stamp, _size(record)):
                self._metrics.records_skipped.inc()  # a previous owner finished it
                continue
            key: Key = (
                partition,
                record.key if record.key is not None else ("offset", record.offset),
            )
            submit(key, Work(record, state))
        if offsets.outstanding >= self._settings.partition_buffer:
            self._hold(state, "buffer")

    async def _run(self, work: Work) -> None:
        try:
            await self._process(work)
        except AbandonedError:
            self._metrics.interrupted("redelivered").inc()
            raise
        # `state` is the assignment's own: a record finishing after its partition was given up
        # (and perhaps assigned again) marks only that earlier assignment's offsets
        state = work.state
        state.offsets.finished(work.record.offset)
        self._health.progress()
        if "buffer" in state.holds and state.offsets.outstanding <= self._resume_below:
            self._unhold(state, "buffer")
        if self._over_budget:
            self._apply_budget()

    def _key_failed(self, error: BaseException, work: Work) -> None:
        record = work.record
        message = (
            f"processing the record at partition {record.partition} offset {record.offset} "
            f"raised {error!r} where even its failed result could not be published; its key "
            "is stopped and the worker exits so that the record is redelivered in order after "
            "a restart"
        )
        log.error("worker_fatal", reason=message, exc_info=error)
        self._fail(FatalError(message))

    def _fail(self, error: FatalError) -> None:
        """Stop the worker: it drains what it can, then exits with `error`."""
        if self.fatal is None:
            self.fatal = error
        self.request_stop()

    # ------------------------------------------------------------------ holds
    def _hold(self, state: PartitionState, reason: str) -> None:
        """Pause `state`'s partition for `reason` (it stays paused while any reason holds)."""
        if reason in state.holds:
            return
        if not state.holds:
            self._source.pause(state.partition)
            self._metrics.partition_paused.labels(self._source.topic, str(state.partition)).set(1)
        state.holds.add(reason)

    def _unhold(self, state: PartitionState, reason: str) -> None:
        if reason not in state.holds:
            return
        state.holds.discard(reason)
        if not state.holds and self._partitions.get(state.partition) is state and state.running:
            self._source.resume(state.partition)
            self._metrics.partition_paused.labels(self._source.topic, str(state.partition)).set(0)

    def _apply_budget(self) -> None:
        """Hold every partition while the buffered bytes are at the budget; let them go again
        once below the resume share."""
        buffered = self.buffered_bytes
        if not self._over_budget and buffered >= self._budget:
            self._over_budget = True
            log.info("buffer_budget_reached", buffered_bytes=buffered, budget_bytes=self._budget)
            for state in self._partitions.values():
                if state.running:
                    self._hold(state, "memory")
        elif self._over_budget and buffered <= self._budget * self._settings.partition_resume_ratio:
            self._over_budget = False
            for state in self._partitions.values():
                self._unhold(state, "memory")

    def _limit_maps(self, states: list[PartitionState]) -> None:
        """Hold a partition before its offset map outgrows the metadata budget (as Parallel
        Consumer does); it is let go when the map has shrunk well below."""
        budget = self._committer.budget
        if budget <= 0:
            return  # the broker takes no maps: plain positions, nothing to protect
        for state in states:
            encoded = state.encoded
            if encoded is None:
                continue
            size = len(encoded.metadata) if encoded.complete else budget + 1
            if size > budget * MAP_HOLD_SHARE:
                if "offset_map" not in state.holds:
                    log.warning("offset_map_hold", partition=state.partition, map_bytes=size)
                self._hold(state, "offset_map")
            elif size < budget * MAP_RESUME_SHARE:
                self._unhold(state, "offset_map")

    # ------------------------------------------------------------------ commits and lag
    async def _settle_idle(self, states: list[PartitionState]) -> None:
        """Partitions with nothing unfinished commit the consumer's position.

        That position may be past the last record (a transaction marker follows it); committing
        it keeps lag at zero for an idle partition of a transactional producer.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._deadlines.commit):
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


def _size(record: Record) -> int:
    """What a buffered record costs in memory, about."""
    headers = sum(len(name) + len(value or b"") for name, value in record.headers)
    return RECORD_OVERHEAD_BYTES + len(record.key or b"") + len(record.value or b"") + headers
