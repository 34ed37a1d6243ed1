"""One simulated run: members of a group on the in-memory broker, a schedule of faults, the
workload, and everything that can be judged afterwards.

Members are whole workers (`worker.app.Worker`) with the in-memory Kafka and the simulated
API. A SIGTERM is `request_stop()`, a second signal cancels the worker's task (what the
process's handler does), SIGKILL cuts the member's connections first (its producer loses what
Kafka did not acknowledge, its group session lapses, its API requests stop) and then drops its
tasks: a crash keeps no in-memory state. After the last fault the world heals, a member is
started if none is left, and the run ends once every command has its result and every member
stopped gracefully, or at `TIME_LIMIT_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog
from prometheus_client import CollectorRegistry

from contracts.headers import REPLAY
from devtools.workload import Sent, lifecycles
from simulation.api import MemberApi, SimulatedApi
from simulation.clock import StalledError
from simulation.schedule import MEMBER_FAULTS, Fault, Schedule
from worker.app import Worker
from worker.deadlines import Deadlines
from worker.kafka.memory import InMemoryBroker, MemoryBackend, MemoryCommandSource
from worker.kafka.ports import Committed
from worker.kafka.timing import GroupTiming
from worker.metrics import Metrics
from worker.pipeline import offset_map
from worker.settings import Settings

COMMANDS, RESULTS, STATE, DLQ = "sim.commands", "sim.results", "sim.state", "sim.dlq"
PARTITIONS = 6
TIME_LIMIT_SECONDS = 900.0
SESSION_TIMEOUT_SECONDS = 6.0
FORCED_EXIT_BOUND_SECONDS = 12.0  # kill wait, then each client's bounded stop
SAMPLE_SECONDS = 0.25
EPOCH = 1_800_000_000.0  # wall-clock seconds at virtual time 0 (record timestamps)
SETTINGS: dict[str, Any] = {
    "app_id": "sim-app",
    "group_id": "sim",
    "topic_commands": COMMANDS,
    "topic_results": RESULTS,
    "topic_state": STATE,
    "topic_dlq": DLQ,
    "topic_partitions": PARTITIONS,
    "http_host": "127.0.0.1",
    "http_port": 0,
    "max_in_flight": 20,
    "kafka_session_timeout_seconds": SESSION_TIMEOUT_SECONDS,
    "kafka_heartbeat_interval_seconds": 1.0,
    "kafka_rebalance_timeout_seconds": 12.0,
    "drain_grace_seconds": 6.0,
    "api_timeout_seconds": 4.0,
    "api_backoff_base_seconds": 0.05,
    "api_backoff_max_seconds": 1.0,
    "api_quota_backoff_seconds": 1.0,
    "partition_open_timeout_seconds": 60.0,
    "buffer_max_bytes": 2_097_152,
    "log_level": "ERROR",
}


@dataclass
class Member:
    """One worker process of the group, and what became of it."""

    name: str
    worker: Worker
    backend: MemoryBackend
    api: MemberApi
    task: asyncio.Task[None]
    started_at: float
    stop_at: float | None = None
    forced_at: float | None = None
    crashed_at: float | None = None
    ended_at: float | None = None
    error: BaseException | None = None
    peak_buffered: int = 0

    @property
    def alive(self) -> bool:
        return self.crashed_at is None and not self.task.done()


@dataclass
class Observations:
    """What a run leaves to be judged."""

    schedule: Schedule
    deadlines: Deadlines
    settings: Settings
    broker: InMemoryBroker
    api: SimulatedApi
    sent: list[tuple[int, int, Sent]]  # (partition, offset, what) of every produced record
    members: list[Member]
    commits: list[tuple[float, str, dict[int, Committed]]]  # (time, member, offsets)
    unfinished_commits: list[str]  # commits that passed a record without its outputs
    events: list[dict[str, Any]]  # log events of interest, with the member that wrote them
    outputs: OutputIndex
    ended_at: float
    stalled: str | None = None  # why the run could not finish
    faults_applied: int = 0


class OutputIndex:
    """The results and dead letters on the broker, read incrementally."""

    def __init__(self, broker: InMemoryBroker) -> None:
        self._broker = broker
        self._read = {RESULTS: [0] * PARTITIONS, DLQ: [0] * PARTITIONS}
        self.results: dict[str, list[int]] = {}  # command id -> sequences of its results
        self.letters: dict[tuple[int, int], int] = {}  # (partition, offset) -> first letter

    def refresh(self) -> None:
        """Index what was appended since the last call."""
        for topic, positions in self._read.items():
            for partition in range(PARTITIONS):
                log = self._broker.partition_log(topic, partition)
                for record in log[positions[partition] :]:
                    self._index(topic, record)
                positions[partition] = len(log)

    def _index(self, topic: str, record: Any) -> None:
        if topic == RESULTS:
            if record.value:
                command_id = msgspec.json.decode(record.value, type=_ResultId).command_id
                self.results.setdefault(command_id, []).append(record.sequence)
            return
        headers = dict(record.headers)
        partition = headers.get("__connect.errors.partition")
        offset = headers.get("__connect.errors.offset")
        if partition is not None and offset is not None:
            self.letters.setdefault((int(partition), int(offset)), record.sequence)


class _ResultId(msgspec.Struct):
    command_id: str


class _Events:
    """Keeps the log events the judge reads; drops every other line without rendering it."""

    KEPT = frozenset(
        {
            "partitions_released",
            "partition_open_failed",
            "worker_fatal",
            "command_internal_error",
            "background_task_failed",
            "shutdown_overran",
        }
    )

    def __init__(self) -> None:
        self.kept: list[dict[str, Any]] = []

    def __call__(self, _: Any, __: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
        if event.get("event") in self.KEPT:
            self.kept.append(dict(event))
        raise structlog.DropEvent


class World:
    """Runs one schedule."""

    def __init__(self, schedule: Schedule, settings: Settings) -> None:
        self.schedule = schedule
        self.settings = settings
        self.deadlines = GroupTiming.from_settings(settings).deadlines
        self.loop = asyncio.get_running_loop()
        self.rng = random.Random(schedule.seed)
        self.broker = InMemoryBroker(clock=lambda: EPOCH + self.loop.time())
        for topic in (COMMANDS, RESULTS, DLQ):
            self.broker.create_topic(topic, PARTITIONS)
        self.broker.create_topic(STATE, 2)
        self.api = SimulatedApi(
            clock=self.loop.time, random=self.rng.random, timeout=settings.api_timeout_seconds
        )
        self.members: list[Member] = []
        self.sent: list[tuple[int, int, Sent]] = []
        self.commits: list[tuple[float, str, dict[int, Committed]]] = []
        self.unfinished: list[str] = []
        self.events = _Events()
        self.outputs = OutputIndex(self.broker)
        self._finished: set[tuple[int, int]] = set()
        self._workload = lifecycles(f"s{schedule.seed}", schedule.keys, per_key=6)
        self._ids = {s.command_id for s in self._workload if s.command_id}
        self._windows: dict[str, float] = {}
        self.broker.on_commit = self._committed

    # ------------------------------------------------------------------ the run
    async def run(self) -> Observations:
        structlog.configure(
            processors=[structlog.contextvars.merge_contextvars, self.events],
            logger_factory=structlog.ReturnLoggerFactory(),
            cache_logger_on_first_use=False,
        )
        stalled = None
        for _ in range(self.schedule.members):
            self._start_member()
        producing = asyncio.create_task(self._produce())
        sampling = asyncio.create_task(self._sample())
        applied = 0
        try:
            async with asyncio.timeout(TIME_LIMIT_SECONDS):
                for fault in self.schedule.faults:
                    await self._until(fault.at)
                    applied += self._apply(fault)
                await producing
                await self._heal()
                await self._until_every_command_done()
                await self._stop_all()
        except TimeoutError:
            stalled = f"the run did not finish within {TIME_LIMIT_SECONDS:g} s of virtual time"
        except StalledError as error:
            stalled = f"every task waits for something nobody will do: {error}"
        finally:
            producing.cancel()
            sampling.cancel()
            for member in self.members:
                if not member.task.done():
                    member.task.cancel()
            await asyncio.gather(*(m.task for m in self.members), return_exceptions=True)
        return Observations(
            schedule=self.schedule,
            deadlines=self.deadlines,
            settings=self.settings,
            broker=self.broker,
            api=self.api,
            sent=self.sent,
            members=self.members,
            commits=self.commits,
            unfinished_commits=self.unfinished,
            events=self.events.kept,
            outputs=self.outputs,
            ended_at=self.loop.time(),
            stalled=stalled,
            faults_applied=applied,
        )

    async def _until(self, at: float) -> None:
        delay = at - self.loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _until_every_command_done(self) -> None:
        while not self._every_command_done():  # noqa: ASYNC110 - virtual time: polling is free
            await asyncio.sleep(0.5)

    async def _produce(self) -> None:
        """The workload, spread over `produce_seconds`."""
        step = self.schedule.produce_seconds / max(1, len(self._workload))
        for sent in self._workload:
            self._send(sent)
            await asyncio.sleep(step)

    def _send(self, sent: Sent, **extra: Any) -> None:
        stored = self.broker.produce(COMMANDS, sent.value, key=sent.key, **extra)
        self.sent.append((stored.partition, stored.offset, sent))

    async def _sample(self) -> None:
        while True:
            for member in self.members:
                consumer = member.worker.consumer
                if member.alive and consumer is not None:
                    member.peak_buffered = max(member.peak_buffered, consumer.buffered_bytes)
            await asyncio.sleep(SAMPLE_SECONDS)

    # ------------------------------------------------------------------ members
    def _start_member(self) -> Member:
        name = f"m{len(self.members)}"
        backend = self.broker.backend(self.settings)
        api = self.api.member(name)
        worker = Worker(
            self.settings, Metrics(CollectorRegistry()), kafka=backend, api=lambda *_: api
        )

        async def run() -> None:
            structlog.contextvars.bind_contextvars(member=name)
            await worker.run()

        task = asyncio.create_task(run(), name=name)
        member = Member(name, worker, backend, api, task, started_at=self.loop.time())
        task.add_done_callback(lambda done: self._ended(member, done))
        self.members.append(member)
        return member

    def _ended(self, member: Member, task: asyncio.Task[None]) -> None:
        member.ended_at = self.loop.time()
        if not task.cancelled():
            member.error = task.exception()

    def _alive(self, target: int, *, stopping: bool = False) -> Member | None:
        alive = [m for m in self.members if m.alive and (m.stop_at is not None) == stopping]
        return alive[target % len(alive)] if alive else None

    def _crash(self, member: Member) -> None:
        member.crashed_at = self.loop.time()
        member.api.dead = True
        for sink in member.backend.sinks:
            sink.closed = True
        for source in member.backend.sources:
            self.broker.crash(source, session_timeout=SESSION_TIMEOUT_SECONDS)
        member.task.cancel()

    # ------------------------------------------------------------------ faults
    def _apply(self, fault: Fault) -> int:
        """Make `fault` happen now; 1 if it did, 0 if it found nothing to act on."""
        kind = fault.kind
        if kind == "join":
            self._start_member()
            return 1
        if kind == "hostile":
            self._hostile(fault.detail)
            return 1
        if kind not in MEMBER_FAULTS:
            self._window(fault)
            return 1
        # a SIGTERM goes to a member that runs, a second signal to one that drains
        member = self._alive(fault.target, stopping=kind == "second_signal")
        if member is None:
            return 0
        if kind == "sigterm":
            member.stop_at = self.loop.time()
            member.worker.request_stop()
        elif kind == "second_signal":
            member.forced_at = self.loop.time()
            member.task.cancel()
        else:
            self._crash(member)
        return 1

    def _window(self, fault: Fault) -> None:
        end = self.loop.time() + fault.duration
        self._windows[fault.kind] = max(self._windows.get(fault.kind, 0.0), end)

        def active() -> bool:
            return self.loop.time() < self._windows.get(fault.kind, 0.0)

        broker, faults, value = self.broker, self.api.faults, fault.value
        if fault.kind == "kafka_slow":
            broker.send_latency = lambda _: value if active() else 0.0
        elif fault.kind == "commit_slow":
            broker.commit_latency = lambda _: value if active() else 0.0
        elif fault.kind == "commit_fail":
            broker.commit_fault = lambda _: ConnectionError("commit failed") if active() else None
        elif fault.kind == "fetch_fail":
            broker.fetch_fault = lambda _: ConnectionError("fetch failed") if active() else None
        elif fault.kind == "lookup_fail":
            broker.lookup_fault = lambda _: ConnectionError("lookup failed") if active() else None
        elif fault.kind == "lookup_slow":
            broker.lookup_latency = lambda _: value if active() else 0.0
        elif fault.kind == "results_unreadable":
            broker.poll_fault = lambda topic: (
                ConnectionError("results unreadable") if topic == RESULTS and active() else None
            )
        else:
            field_name = _API_FIELDS[fault.kind]
            setattr(faults, field_name, value)
            self.loop.call_at(end, self._calm_api, fault.kind, field_name)

    def _calm_api(self, kind: str, field_name: str) -> None:
        if self.loop.time() >= self._windows.get(kind, 0.0):
            setattr(self.api.faults, field_name, getattr(type(self.api.faults)(), field_name))

    def _hostile(self, kind: str) -> None:
        key = f"hostile-{len(self.sent)}".encode()
        command_id = f"hostile-{len(self.sent)}"
        speak = {"command": "agent.get", "id": command_id, "agent_id": "nobody"}
        encode = msgspec.json.encode
        if kind == "year_10000":
            self._send(Sent(key, encode(speak), command_id), timestamp=253_402_300_800_000)
        elif kind == "negative_time":
            self._send(Sent(key, encode(speak), command_id), timestamp=-1)
        elif kind == "big":
            self._send(Sent(key, encode({**speak, "padding": "x" * 300_000}), command_id))
        elif kind == "deep":
            self._send(Sent(key, b'{"a":' * 100_000 + b"1" + b"}" * 100_000, None))
        elif kind == "bad_utf8":
            self._send(Sent(key, b'{"command": "agent.get", "id": "\xff\xfe"}', None))
        elif kind == "replay_junk":
            stored = self.broker.produce(
                COMMANDS, encode(speak), key=key, headers=[(REPLAY, b"\x00junk" * 10)]
            )
            self.sent.append((stored.partition, stored.offset, Sent(key, None, command_id)))
        elif kind == "colliding_id":
            # a producer sending an answered command again (same key, same id): it must be
            # recognised as done (ids are unique per producer; across keys the guarantee is
            # the dedupe memory's, see worker.pipeline.dedupe)
            self.outputs.refresh()
            done = sorted(self._ids & set(self.outputs.results))
            if done:
                reused = done[len(self.sent) % len(done)]
                original = next(s for _, _, s in self.sent if s.command_id == reused)
                self._send(Sent(original.key, original.value, reused))
            else:
                self._send(Sent(key, encode(speak), command_id))
        else:
            self._send(Sent(key, None, None))

    async def _heal(self) -> None:
        """After the last fault: no window is active, and some member serves the group."""
        latest = max(self._windows.values(), default=0.0)
        await self._until(latest)
        for kind in ("api_slow", "api_errors", "api_throttle", "api_timeouts", "api_refused"):
            self._calm_api(kind, _API_FIELDS[kind])
        if not any(m.alive and m.stop_at is None for m in self.members):
            self._start_member()

    def _every_command_done(self) -> bool:
        self.outputs.refresh()
        results, letters = self.outputs.results, self.outputs.letters
        return all(
            s.command_id in results if s.command_id else (p, o) in letters for p, o, s in self.sent
        )

    async def _stop_all(self) -> None:
        for member in self.members:
            if member.alive and member.stop_at is None:
                member.stop_at = self.loop.time()
                member.worker.request_stop()
        await asyncio.gather(*(m.task for m in self.members), return_exceptions=True)

    # ------------------------------------------------------------------ commits
    def _committed(self, source: MemoryCommandSource, offsets: Mapping[int, Committed]) -> None:
        """Every commit: the records it declares done must have their outputs on Kafka."""
        member = next(
            (m.name for m in self.members if source in m.backend.sources), "an unknown member"
        )
        self.commits.append((self.loop.time(), member, dict(offsets)))
        for partition, committed in offsets.items():
            self._check_commit(member, partition, committed)

    def _check_commit(self, member: str, partition: int, committed: Committed) -> None:
        try:
            above = offset_map.decode(committed.offset, committed.metadata)
        except offset_map.OffsetMapError:
            above = set()
        self.outputs.refresh()
        results, letters = self.outputs.results, self.outputs.letters
        for p, offset, sent in self.sent:
            if p != partition or (p, offset) in self._finished:
                continue
            if not (offset < committed.offset or offset in above):
                continue
            if sent.command_id in results or (p, offset) in letters:
                self._finished.add((p, offset))
                continue
            self.unfinished.append(
                f"{member} committed partition {p} to {committed.offset} at "
                f"t={self.loop.time():.2f} s, past offset {offset} ({sent.command_id}) whose "
                "outputs are not on Kafka"
            )


_API_FIELDS = {
    "api_slow": "latency",
    "api_errors": "server_errors",
    "api_throttle": "throttled",
    "api_timeouts": "timeouts",
    "api_refused": "refused",
}


def settings_for(**overrides: Any) -> Settings:
    """The members' settings (short timings, small budgets), with `overrides`."""
    return msgspec.convert({**SETTINGS, **overrides}, Settings)


def simulate(schedule: Schedule, settings: Settings) -> tuple[Observations, float]:
    """Run `schedule` on a fresh virtual-time loop; returns the observations and the real
    seconds it took."""
    from simulation.clock import virtual_loop  # noqa: PLC0415 - one loop per run

    loop, _ = virtual_loop()
    random.seed(schedule.seed)  # the worker's own jitter comes from the process's generator
    started = time.perf_counter()
    try:
        asyncio.set_event_loop(loop)

        async def main() -> Observations:
            return await World(schedule, settings).run()

        observations = loop.run_until_complete(main())
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)
    return observations, time.perf_counter() - started
