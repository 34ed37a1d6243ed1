"""A consumer group of worker processes, and the counts that judge its delivery guarantees.

`WorkerGroup` starts members (`convoai-worker run` processes with one group id, each with its own
ops port and log file), makes them leave by SIGTERM or die by SIGKILL, and stops whatever still
runs when its block ends, also on failure. `ResultsTail` follows the results topic to measure
progress; `Delivery` counts, per command, the results on Kafka and the calls that reached the
API (attributed by a unique `text`, see `tests.pipeline.scenarios.speaks`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from contracts import ResultEvent, decode_result
from contracts.headers import (
    DLQ_EXCEPTION_CLASS_NAME,
    DLQ_ORIGINAL_BYTES,
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_SHA256,
    DLQ_ORIGINAL_TOPIC,
    DLQ_STAGE,
    STAGE_DECODE,
    STAGE_EXECUTE,
)
from devtools.local import free_port
from tests.emulator.harness import RunningEmulator, start_body
from tests.pipeline.harness import APP_ID, spawn_worker, stop_process, wait_ready
from worker.kafka.aio import all_partitions
from worker.settings import Settings


@dataclass
class Member:
    """One worker process of the group."""

    name: str
    settings: Settings
    process: subprocess.Popen[bytes]
    log: Path
    exit_code: int | None = None  # set once the group stopped it
    signals: list[str] = field(default_factory=list)  # what the group sent it

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


class WorkerGroup:
    """Worker processes sharing the group of `settings`; all are stopped when the block ends."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.members: list[Member] = []

    async def __aenter__(self) -> WorkerGroup:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # graceful when the test went well (exit codes are checked), at once when it failed
        await self.stop_all(signal.SIGTERM if kind is None else signal.SIGKILL)

    async def join(self, **overrides: Any) -> Member:
        """Start one more member (own ops port and log file) and wait until it is ready."""
        name = f"worker-{len(self.members) + 1}"
        settings = msgspec.structs.replace(self.settings, http_port=free_port(), **overrides)
        log = self.log_dir / f"{name}.log"
        member = Member(name, settings, spawn_worker(settings, str(log)), log)
        self.members.append(member)
        exited = asyncio.create_task(_exited(member.process))
        try:
            await wait_ready(settings.http_port, exited)
        except AssertionError as error:
            raise AssertionError(
                f"{name} did not become ready: {error}\n{member.log_tail()}"
            ) from error
        finally:
            exited.cancel()
        return member

    async def terminate(self, member: Member) -> int:
        """SIGTERM (graceful leave: drain, commit, leave the group); the exit code."""
        return await self._stop(member, signal.SIGTERM)

    async def kill(self, member: Member) -> int:
        """SIGKILL: the member dies without committing or leaving the group."""
        return await self._stop(member, signal.SIGKILL)

    async def stop_all(self, sig: int = signal.SIGTERM) -> dict[str, int]:
        """Stop every member still running (by its pid); every member's exit code."""
        await asyncio.gather(*(self._stop(m, sig) for m in self.members if m.exit_code is None))
        return {m.name: m.process.returncode for m in self.members}

    def check(self) -> None:
        """Raise when a member exited without being told to (with the end of its log)."""
        for member in self.members:
            if not member.signals and not member.running:
                raise AssertionError(
                    f"{member.name} (pid {member.process.pid}) exited on its own with code "
                    f"{member.process.returncode}:\n{member.log_tail()}"
                )

    def terminated_exit_codes(self) -> dict[str, int | None]:
        """Exit codes of the members that got SIGTERM (graceful leaves must exit 0)."""
        return {m.name: m.exit_code for m in self.members if "SIGTERM" in m.signals}

    async def _stop(self, member: Member, sig: int) -> int:
        member.signals.append(signal.Signals(sig).name)
        member.exit_code = await stop_process(member.process, sig)
        return member.exit_code


async def _exited(process: subprocess.Popen[bytes]) -> None:
    """Return once `process` has exited (gives up a little after the readiness deadline)."""
    for _ in range(700):
        if process.poll() is not None:
            return
        await asyncio.sleep(0.1)


class TopicTail:
    """Follows a topic from its beginning (no group, no commits), keeping every record."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,  # dead letters may be ~1 MiB each
        )
        self.records: list[ConsumerRecord[bytes, bytes]] = []

    async def __aenter__(self) -> Self:
        await self._consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def poll(self, wait_ms: int = 200) -> None:
        """Read what arrived since the last poll (waiting up to `wait_ms` for something)."""
        batches = await self._consumer.getmany(timeout_ms=wait_ms)
        for records in batches.values():
            for record in records:
                self._add(record)

    def _add(self, record: ConsumerRecord[bytes, bytes]) -> None:
        self.records.append(record)

    async def catch_up(self) -> None:
        """Read up to the current end of every partition."""
        tps = await all_partitions(self._consumer)
        end = await self._consumer.end_offsets(tps)
        while any([await self._consumer.position(tp) < end[tp] for tp in tps]):
            await self.poll()

    async def wait_until(
        self,
        done: Callable[[], bool],
        *,
        within: float,
        what: Callable[[], str],
        check: Callable[[], None] | None = None,
    ) -> float:
        """Poll until `done()`; the seconds it took.

        `check` runs on every poll (e.g. `WorkerGroup.check`, to fail at once when a worker
        died); after `within` seconds this fails with `what()`, saying what was awaited.
        """
        started = time.monotonic()
        while not done():
            if check is not None:
                check()
            if time.monotonic() - started > within:
                raise AssertionError(f"not within {within:.0f} s: {what()}")
            await self.poll()
        return time.monotonic() - started


class ResultsTail(TopicTail):
    """A tail of the results topic that counts result records per command id."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(bootstrap, topic)
        self.results: list[ResultEvent] = []
        self.per_command: Counter[str] = Counter()

    def _add(self, record: ConsumerRecord[bytes, bytes]) -> None:
        super()._add(record)
        result = decode_result(record.value)
        self.results.append(result)
        self.per_command[result.command_id] += 1

    async def wait_for(
        self, count: float, *, within: float, check: Callable[[], None] | None = None
    ) -> float:
        """Wait until `count` distinct commands have a result (see `wait_until`)."""
        return await self.wait_until(
            lambda: len(self.per_command) >= count,
            within=within,
            what=lambda: f"{count:.0f} commands with a result (have {len(self.per_command)})",
            check=check,
        )


def seed_agents(emulator: RunningEmulator, count: int, prefix: str) -> list[str]:
    """Start `count` agents directly in the emulator's state (no API calls logged); their ids."""
    ids = []
    for n in range(count):
        started = emulator.state.start_agent(APP_ID, start_body(f"{prefix}-{n}", f"{prefix}-{n}"))
        ids.append(started["agent_id"])
    return ids


def api_calls_per_command(emulator: RunningEmulator, operation: str) -> Counter[str]:
    """How often each command's call reached the API, by the body's `text` (the command id)."""
    return Counter(request["body"]["text"] for request in emulator.requests(operation))


@dataclass(frozen=True)
class Delivery:
    """What reached Kafka and the API for a set of commands."""

    commands: int
    results: int  # result records, duplicates included
    without_result: int
    duplicate_results: int  # result records beyond one per command
    repeated_calls: int  # API calls beyond one per command
    called_more_than_once: int  # commands whose call reached the API twice or more

    @classmethod
    def count(
        cls, command_ids: Collection[str], results: Counter[str], calls: Counter[str]
    ) -> Delivery:
        """Figures for `command_ids` from results and API calls counted per command id."""
        ours = set(command_ids)
        return cls(
            commands=len(ours),
            results=sum(n for cid, n in results.items() if cid in ours),
            without_result=len(ours - set(results)),
            duplicate_results=sum(n - 1 for cid, n in results.items() if cid in ours),
            repeated_calls=sum(n - 1 for cid, n in calls.items() if cid in ours),
            called_more_than_once=sum(1 for cid, n in calls.items() if cid in ours and n > 1),
        )

    def __str__(self) -> str:
        return ", ".join(f"{name} {value}" for name, value in dataclasses.asdict(self).items())


def dead_letter_problems(
    dead: ConsumerRecord[bytes, bytes], original: ConsumerRecord[bytes, bytes]
) -> list[str]:
    """What is wrong with `dead` as the dead letter of `original` (nothing when it is right).

    Its Connect headers locate the original record and name the stage and the exception; it
    carries the original key and value, or, when the copy was too large, a prefix of the value
    with the original's size and SHA-256 in headers.
    """
    headers = dict(dead.headers)
    problems = []
    at = [headers.get(name, b"") for name in (DLQ_ORIGINAL_TOPIC, DLQ_ORIGINAL_PARTITION)]
    at.append(headers.get(DLQ_ORIGINAL_OFFSET, b""))
    location = [original.topic, str(original.partition), str(original.offset)]
    if [value.decode(errors="replace") for value in at] != location:
        problems.append(f"headers locate {at}, the original is at {location}")
    if headers.get(DLQ_STAGE, b"").decode() not in (STAGE_DECODE, STAGE_EXECUTE):
        problems.append(f"stage {headers.get(DLQ_STAGE)!r}")
    if not headers.get(DLQ_EXCEPTION_CLASS_NAME):
        problems.append("no exception class name")
    if dead.key != original.key:
        problems.append(f"key {dead.key!r}, the original's is {original.key!r}")
    value, copy = original.value, dead.value
    if copy != value and not (
        value is not None
        and copy is not None
        and len(copy) < len(value)
        and value.startswith(copy)
        and headers.get(DLQ_ORIGINAL_BYTES) == str(len(value)).encode()
        and headers.get(DLQ_ORIGINAL_SHA256) == hashlib.sha256(value).hexdigest().encode()
    ):
        problems.append("the value is neither the original's nor a prefix with its size and hash")
    return problems


class Timeline:
    """Moments of a run in seconds since it began, each with the time since the one before."""

    def __init__(self) -> None:
        self._start = time.monotonic()
        self._marks: list[tuple[str, float]] = []

    def mark(self, event: str) -> None:
        self._marks.append((event, time.monotonic() - self._start))

    def __str__(self) -> str:
        lines, before = [], 0.0
        for event, at in self._marks:
            lines.append(f"{at:6.1f} s (+{at - before:4.1f} s) {event}")
            before = at
        return "\n".join(lines)


def show(report: str) -> None:
    """Put a run's figures in the test output (`pytest -s` shows them, failures always do)."""
    print(f"\n{report}", flush=True)  # noqa: T201 - the figures are what these tests report
