"""One scenario's world: fresh topics with its commands, a group of workers, tails of the outputs.

A `Stage` produces the scenario's records — as live traffic at a steady rate, or as a backlog
before any worker starts — aims the workers at the shared emulator (reset, with the scenario's
latency), follows the results and the DLQ while the scenario injects its faults, and at the
end stops the workers and collects what the judge reads. Every wait is bounded: a run that
never completes ends with figures that say so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from chaos.calls import attribute
from chaos.infra import EmulatorProcess, OwnBroker, polling
from chaos.judge import Fault, Figures, Observed, judge, longest_stall, recoveries
from chaos.leaks import SecretScan
from devtools.workload import Sent
from tests.kafka import create_topics
from tests.pipeline.group import Member, ResultsTail, TopicTail, WorkerGroup
from tests.pipeline.harness import make_settings, produce, read_topic
from worker.settings import Settings

PARTITIONS = 12
POLL_MS = 100
T = TypeVar("T")


@dataclass
class Run:
    """What every scenario of one chaos run shares."""

    broker: OwnBroker
    emulator: EmulatorProcess
    log_dir: Path
    seed: int
    worker: dict[str, Any]  # settings every worker gets (credentials, timeouts, logging)
    scan: SecretScan


class Stage:
    """Topics, backlog, workers and tails of one scenario (use `async with`)."""

    def __init__(
        self,
        run: Run,
        name: str,
        sent: list[Sent],
        *,
        rate: float | None = None,
        latency_ms: float,
        jitter_ms: float | None = None,
        settings: dict[str, Any],
        within: float,
        allowed: frozenset[str],
    ) -> None:
        """`rate`: records per second from the moment the stage begins (None: all of them
        before); `within`: seconds after the last fault for every command to complete;
        `allowed`: the outcomes the scenario allows (see `chaos.judge`)."""
        self.run = run
        self.name = name
        self.sent = sent
        self.rate = rate
        self.duration = len(sent) / rate if rate else 0.0  # of the production
        self.latency_ms = latency_ms
        self.jitter_ms = latency_ms / 2 if jitter_ms is None else jitter_ms
        self.within = within
        self.allowed = allowed
        kinds = ("commands", "results", "state", "dlq")
        self.topics = {kind: f"chaos.{slug(name)}.{kind}" for kind in kinds}
        bootstrap = run.broker.bootstrap
        self.settings: Settings = make_settings(
            bootstrap, self.topics, run.emulator.api_url, **{**run.worker, **settings}
        )
        log_dir = run.log_dir / slug(name)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.group = WorkerGroup(self.settings, log_dir)
        self.results: ResultsTail  # followed while the stage runs (`open_tails`)
        self.dlq: TopicTail
        self.ids = {s.command_id for s in sent if s.command_id is not None}
        self.producing: asyncio.Task[list[tuple[int, int]]] | None = None
        self.faults: list[Fault] = []
        self.figures = Figures(name, {})
        self.entered = self.started = 0.0  # the stage began; production began or ended

    async def __aenter__(self) -> Stage:
        self.entered = time.time()
        bootstrap = self.run.broker.bootstrap
        topics = self.topics
        await create_topics(bootstrap, [topics["commands"]], partitions=PARTITIONS)
        await create_topics(
            bootstrap,
            [topics["results"]],
            partitions=PARTITIONS,
            configs={"message.timestamp.type": "LogAppendTime"},  # append times for recovery
        )
        await create_topics(bootstrap, [topics["state"]], configs={"cleanup.policy": "compact"})
        await create_topics(bootstrap, [topics["dlq"]])
        await self.run.emulator.reset()
        await self.api_faults()
        self.producing = asyncio.create_task(
            produce(
                bootstrap,
                topics["commands"],
                [s.record for s in self.sent],
                rate=self.rate,
                max_request_size=2 * 1024 * 1024,  # ~1 MiB poison records
                request_timeout_ms=120_000,  # buffered through a broker outage
            )
        )
        if self.rate is None:
            await self.producing
        await self.open_tails()
        self.started = time.time()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        await self.group.__aexit__(kind, None, None)
        await self.close_tails()
        if self.producing is not None:
            self.producing.cancel()

    async def open_tails(self) -> None:
        """Follow the results and the DLQ (from their beginning)."""
        bootstrap = self.run.broker.bootstrap
        self.results = await ResultsTail(bootstrap, self.topics["results"]).__aenter__()
        self.dlq = await TopicTail(bootstrap, self.topics["dlq"]).__aenter__()

    async def close_tails(self) -> None:
        """Stop following (so that they do not spin while the broker is down)."""
        await self.results.__aexit__()
        await self.dlq.__aexit__()

    async def api_faults(self, rules: list[dict[str, Any]] | None = None) -> None:
        """The scenario's API latency plus `rules` (`FaultRule`s as JSON)."""
        faults = {"latency_ms": self.latency_ms, "latency_jitter_ms": self.jitter_ms}
        await self.run.emulator.faults({**faults, "rules": rules or []})

    # ------------------------------------------------------------------ progress
    @property
    def done(self) -> int:
        """Commands with a result so far."""
        return len(self.results.per_command)

    async def mid_stream(self, what: str) -> None:
        """Note a fault injected after the stream ended (the scenario proves nothing then)."""
        await self.results.catch_up()
        self.figures.require(self.done < len(self.ids), f"{what} came after the last result")

    async def meanwhile(self, work: Awaitable[T]) -> T:
        """Await `work` while following the outputs (`polling`)."""
        return await polling(work, self.poll)

    async def join(self) -> Member:
        """One more worker, once it is ready."""
        return await self.meanwhile(self.group.join())

    async def stop(self, member: Member, how: str) -> None:
        """SIGTERM (the member drains and leaves) or SIGKILL, and its exit."""
        leave = self.group.kill if how == "SIGKILL" else self.group.terminate
        await self.meanwhile(leave(member))

    async def replace(self, old: Member, *, after: float) -> Member:
        """A rolling deploy's step: SIGTERM `old` and start a new member `after` seconds later;
        the new member, once it is ready and `old` has exited."""

        async def deploy() -> Member:
            leaving = asyncio.ensure_future(self.group.terminate(old))
            try:
                await asyncio.sleep(after)
                return await self.group.join()
            finally:
                await leaving

        return await self.meanwhile(deploy())

    async def poll(self) -> None:
        """Read new results and dead letters; fail when a worker exited on its own."""
        self.group.check()
        await self.results.poll(POLL_MS)
        await self.dlq.poll(0)

    async def pause(self, seconds: float) -> None:
        """Follow the outputs for `seconds`."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await self.poll()

    async def at(self, fraction: float) -> None:
        """Follow the outputs until `fraction` of the production time has passed."""
        await self.pause(self.started + fraction * self.duration - time.time())

    async def recovered(self, within: float = 120.0) -> None:
        """Follow the outputs until every results partition has a result appended after the
        last fault ended (or every command has one): the next fault then meets a recovered
        group, and each fault's recovery is its own. Not within `within` s is a violation."""
        last = self.faults[-1] if self.faults else None
        since = last.end * 1000 if last else 0.0

        def done() -> bool:
            latest: dict[int, float] = {}
            for record in self.results.records:
                latest[record.partition] = max(latest.get(record.partition, 0), record.timestamp)
            return min(latest.values(), default=0) > since or self.done >= len(self.ids)

        after = last.name if last else "the start"
        held = await self._until(done, within)
        self.figures.require(held, f"not recovered {within:g} s after {after}")

    async def reach(self, fraction: float, within: float = 300.0) -> None:
        """Follow the outputs until `fraction` of the commands have a result."""
        await self._until(lambda: self.done >= fraction * len(self.ids), within)

    async def _until(self, condition: Callable[[], bool], within: float) -> bool:
        end = time.monotonic() + within
        while not condition():
            if time.monotonic() > end:
                return False
            await self.poll()
        return True

    def fault_ended(self, fault: str, *, killed: bool = False, began: float | None = None) -> None:
        """Mark the end of `fault` (`killed`: a SIGKILL; `began`: when a fault that lasts
        began): its recovery is measured from here."""
        name = f"{len(self.faults) + 1}. {fault}"
        self.faults.append(Fault(name, time.time(), killed, began))

    # ------------------------------------------------------------------ the end
    async def finish(self) -> Figures:
        """Wait (bounded) for every command, stop the workers, judge what came out."""
        figures = self.figures
        assert self.producing is not None  # noqa: S101 - set when the stage began
        places = await self.meanwhile(self.producing)
        poison = sum(1 for s in self.sent if s.poison)
        complete = await self._until(
            lambda: self.done >= len(self.ids) and len(self.dlq.records) >= poison, self.within
        )
        figures.require(complete, f"incomplete {self.within:.0f} s after the last fault")
        for member in self.group.members:
            if member.running:
                self.run.scan("metrics", await scrape(member))
        exits = await self.group.stop_all()
        terminated = self.group.terminated_exit_codes()
        figures.require(set(terminated.values()) <= {0}, f"graceful stops exited with {terminated}")
        await self.results.catch_up()
        await self.dlq.catch_up()
        seen = await self._observe(places)
        judge(
            figures,
            seen,
            self.faults,
            in_flight=self.settings.max_in_flight,
            allowed=self.allowed,
        )
        ends = [fault.end for fault in self.faults]
        waits = recoveries(self.results.records, ends)
        figures.recovery_s = max(waits, default=None)
        figures.notes["recovery per fault s"] = {
            fault.name: round(wait, 1) for fault, wait in zip(self.faults, waits, strict=True)
        }
        figures.longest_stall_s = longest_stall(self.results.records)
        last = max((r.timestamp / 1000 for r in self.results.records), default=self.started)
        figures.drain_s = last - max(ends, default=self.started)
        figures.seconds = time.time() - self.entered
        figures.notes["exit codes"] = exits
        self._scan_logs()
        return figures

    async def _observe(self, places: list[tuple[int, int]]) -> Observed:
        calls = attribute(await self.run.emulator.request_log(), self.sent, self.results.results)
        bootstrap = self.run.broker.bootstrap
        state = await read_topic(bootstrap, self.topics["state"])
        for where, records in (
            ("results", self.results.records),
            ("DLQ", self.dlq.records),
            ("agent state", state),
        ):
            for record in records:
                self.run.scan(where, _record_bytes(record))
        return Observed(
            sent=self.sent,
            places=places,
            originals=await read_topic(bootstrap, self.topics["commands"]),
            results=self.results.results,
            dead=self.dlq.records,
            calls=calls,
        )

    def _scan_logs(self) -> None:
        for member in self.group.members:
            self.run.scan("worker logs", member.log.read_bytes())


def slug(name: str) -> str:
    """A scenario's short name, its number (for topic names, command ids, log folders)."""
    return name.split(":", maxsplit=1)[0]


async def scrape(member: Member) -> bytes:
    """The member's /metrics page."""
    url = f"http://127.0.0.1:{member.settings.http_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return await response.read()


def _record_bytes(record: Any) -> bytes:
    parts = [record.key or b"", record.value or b""]
    parts += [value for _, value in record.headers]
    return b"\n".join(parts)


def setup_of(stage: Stage, **extra: Any) -> dict[str, Any]:
    """The setup a scenario's figures are printed with."""
    settings = stage.settings
    return {
        "records": len(stage.sent),
        "keys": len({s.key for s in stage.sent}),
        "partitions": PARTITIONS,
        "produced_per_s": stage.rate or "all before the workers started",
        "api_latency_ms": f"{stage.latency_ms:g} + 0..{stage.jitter_ms:g}",
        "max_in_flight": settings.max_in_flight,
        "session_timeout_s": settings.kafka_session_timeout_seconds,
        "api_timeout_s": settings.api_timeout_seconds,
        "allowed_outcomes": sorted(stage.allowed),
        **extra,
    }
