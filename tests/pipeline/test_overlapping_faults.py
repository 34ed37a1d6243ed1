"""Faults that overlap, on the real broker with worker processes: a rebalance during a drain (a
rolling deploy), a SIGTERM during a revoke, Kafka stalled while a revoke interrupts work; and
content that must stop nothing: a record dated in the year 10000, a backlog of 1 MB commands.

Speaks are answered seconds late by the emulator, so every fault meets work in flight; the
emulator's request log says how often each speak reached the API. Each test reports its figures
(`pytest -s` shows them).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from devtools.measure import peak_rss_mib
from tests import kafka
from tests.conftest import TopicFactory
from tests.emulator.harness import RunningEmulator, running_emulator
from tests.pipeline.conftest import pipeline_topics
from tests.pipeline.group import (
    Delivery,
    Member,
    ResultsTail,
    Timeline,
    WorkerGroup,
    api_calls_per_command,
    seed_agents,
    show,
)
from tests.pipeline.harness import make_settings, produce
from tests.pipeline.scenarios import speaks
from worker.deadlines import derive
from worker.emulator.config import EmulatorConfig
from worker.emulator.faults import FaultRule, FaultSettings

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 12
WITHIN = 90.0


def slow_speaks(seconds: float, operation: str = "agent.speak") -> EmulatorConfig:
    """An emulator that answers every speak (or `operation`) `seconds` late, after performing
    it."""
    rule = FaultRule(action="delay", operation=operation, delay_ms=seconds * 1000)
    return EmulatorConfig(
        max_agents_per_app=100_000, request_log_size=100_000, faults=FaultSettings(rules=[rule])
    )


@dataclass
class Run:
    """Speaks to agents the emulator runs, a group of worker processes, their results."""

    emulator: RunningEmulator
    commands: list[dict[str, Any]]
    group: WorkerGroup
    tail: ResultsTail
    timeline: Timeline

    async def in_flight(self, count: int) -> None:
        """Wait until the first member has `count` commands in flight (its /metrics)."""
        member = self.group.members[0]
        deadline = time.monotonic() + WITHIN
        while await metric(member, "convoai_commands_in_flight") < count:
            assert time.monotonic() < deadline, "the speaks did not get in flight"
            await asyncio.sleep(0.05)
        self.timeline.mark(f"{count} speaks in flight")

    async def delivery(self) -> Delivery:
        """Every result, after the group stopped; results and API calls per command."""
        await self.tail.wait_for(len(self.commands), within=WITHIN, check=self.group.check)
        await self.group.stop_all()
        await self.tail.catch_up()
        calls = api_calls_per_command(self.emulator, "agent.speak")
        return Delivery.count([c["id"] for c in self.commands], self.tail.per_command, calls)


@contextlib.asynccontextmanager
async def speak_run(
    bootstrap: str,
    topics: dict[str, str],
    log_dir: Path,
    *,
    speak_seconds: float,
    **settings: Any,
) -> AsyncIterator[Run]:
    """200 agents in an emulator with slow speaks; two speaks each, produced once the first
    member is ready (so that they are in flight at once)."""
    async with running_emulator(slow_speaks(speak_seconds)) as emulator:
        ids = seed_agents(emulator, 200, "overlap")
        commands = speaks("overlap", ids, 2)
        config = make_settings(bootstrap, topics, emulator.api_url, max_in_flight=1000, **settings)
        async with (
            WorkerGroup(config, log_dir) as group,
            ResultsTail(bootstrap, topics["results"]) as tail,
        ):
            timeline = Timeline()
            await group.join()
            timeline.mark("worker-1 ready")
            await produce(bootstrap, topics["commands"], commands)
            yield Run(emulator, commands, group, tail, timeline)


@pytest.fixture
async def wide_topics(topic_factory: TopicFactory) -> dict[str, str]:
    """Commands and results with 12 partitions, state and DLQ."""
    return await pipeline_topics(topic_factory, PARTITIONS)


async def metric(member: Member, name: str, **labels: str) -> float:
    """The value of one sample on `member`'s /metrics (0 when absent)."""
    url = f"http://127.0.0.1:{member.settings.http_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return 0.0


async def until_revoking(member: Member) -> None:
    """Wait until `member` has begun giving partitions up."""
    deadline = time.monotonic() + WITHIN
    while await metric(member, "convoai_rebalances_total", kind="revoked") < 1:
        assert time.monotonic() < deadline, "no revocation began"
        await asyncio.sleep(0.05)


def clean(figures: Delivery, exits: dict[str, int | None], report: str) -> None:
    assert figures.without_result == 0, report
    assert figures.repeated_calls == 0, report
    assert figures.duplicate_results == 0, report
    assert set(exits.values()) == {0}, report


async def test_a_rebalance_during_a_drain_repeats_nothing(
    kafka_bootstrap: str, wide_topics: dict[str, str], tmp_path: Path
) -> None:
    """A rolling deploy: SIGTERM while 400 speaks (8 s each) are in flight, a new member 0.3 s
    later. The leaver's revoke joins its drain, so the newcomer gets the partitions only once
    the speaks are done: none reaches the API twice, none has two results."""
    async with speak_run(kafka_bootstrap, wide_topics, tmp_path, speak_seconds=8) as run:
        leaver = run.group.members[0]
        await run.in_flight(100)
        leaving = asyncio.create_task(run.group.terminate(leaver))
        run.timeline.mark("SIGTERM to worker-1")
        await asyncio.sleep(0.3)
        await run.group.join()
        run.timeline.mark("worker-2 ready")
        await leaving
        run.timeline.mark(f"worker-1 exited, code {leaver.exit_code}")
        figures = await run.delivery()
    exits = run.group.terminated_exit_codes()
    report = f"rebalance during a drain: {figures}\nexit codes {exits}\n{run.timeline}"
    show(report)
    clean(figures, exits, report)


async def test_a_sigterm_during_a_revoke_joins_it(
    kafka_bootstrap: str, wide_topics: dict[str, str], tmp_path: Path
) -> None:
    """A member joins while speaks (5 s each) are in flight; SIGTERM reaches the old member
    during its revoke. Its shutdown waits for that revoke instead of cancelling the work under
    it: no speak reaches the API twice, none has two results."""
    async with speak_run(kafka_bootstrap, wide_topics, tmp_path, speak_seconds=5) as run:
        first = run.group.members[0]
        await run.in_flight(100)
        joining = asyncio.create_task(run.group.join())
        await until_revoking(first)
        run.timeline.mark("worker-1 revoking")
        leaving = asyncio.create_task(run.group.terminate(first))
        run.timeline.mark("SIGTERM to worker-1")
        await joining
        run.timeline.mark("worker-2 ready")
        await leaving
        run.timeline.mark(f"worker-1 exited, code {first.exit_code}")
        figures = await run.delivery()
    exits = run.group.terminated_exit_codes()
    report = f"SIGTERM during a revoke: {figures}\nexit codes {exits}\n{run.timeline}"
    show(report)
    clean(figures, exits, report)


async def test_kafka_stalled_while_a_revoke_interrupts_repeats_nothing(tmp_path: Path) -> None:
    """Speaks outlast the revoke grace, and the broker is stopped (SIGSTOP) for 2 s around the
    grace's end, while the interrupted speaks' `unknown` results are published. They reach Kafka
    within the interrupt wait: nothing is killed, nothing runs twice, nobody hangs."""
    timing = {
        "kafka_rebalance_timeout_seconds": 12.0,
        "kafka_heartbeat_interval_seconds": 1.0,
        "kafka_session_timeout_seconds": 6.0,
    }
    deadlines = derive(12.0, 1.0, 10.0)
    with kafka.running_broker(tmp_path / "kafka") as ports:
        bootstrap = f"127.0.0.1:{ports['broker']}"
        broker_pid = int((tmp_path / "kafka" / "kafka.pid").read_text())
        topics = await kafka_topics(bootstrap)
        async with speak_run(
            bootstrap, topics, tmp_path, speak_seconds=deadlines.revoke_grace + 5, **timing
        ) as run:
            first = run.group.members[0]
            await run.in_flight(100)
            joining = asyncio.create_task(run.group.join())
            await until_revoking(first)
            began = time.monotonic()
            run.timeline.mark("worker-1 revoking")
            await asyncio.sleep(max(0.0, deadlines.revoke_grace - 0.5))
            os.kill(broker_pid, signal.SIGSTOP)
            run.timeline.mark("broker stopped")
            try:
                await asyncio.sleep(2.0)
            finally:
                os.kill(broker_pid, signal.SIGCONT)
            run.timeline.mark("broker resumed")
            await joining
            run.timeline.mark(f"worker-2 ready, {time.monotonic() - began:.1f} s after the revoke")
            figures = await run.delivery()
            outcomes = {r.outcome for r in run.tail.results}
    exits = run.group.terminated_exit_codes()
    report = (
        f"Kafka stalled while revoking: {figures}\noutcomes {sorted(outcomes)}\n"
        f"exit codes {exits}\n{run.timeline}"
    )
    show(report)
    clean(figures, exits, report)
    assert "unknown" in outcomes, "the stall did not meet interrupted speaks:\n" + report


async def kafka_topics(bootstrap: str) -> dict[str, str]:
    """The four topics on a broker of the test's own."""
    names = {part: kafka.unique_name(part) for part in ("commands", "results", "state", "dlq")}
    await kafka.create_topics(bootstrap, [names["commands"], names["results"]], partitions=6)
    await kafka.create_topics(bootstrap, [names["state"]], configs={"cleanup.policy": "compact"})
    await kafka.create_topics(bootstrap, [names["dlq"]])
    return names


async def test_a_record_dated_in_the_year_10000_stops_nothing(
    kafka_bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    """A command whose timestamp datetime cannot hold gets its result, and the next command of
    its key runs too: the worker does not exit on a producer's clock."""
    topics = await pipeline_topics(topic_factory, 1)
    # Kafka 4 refuses timestamps more than an hour ahead unless the topic allows them
    topics["commands"] = await topic_factory(
        "commands", configs={"message.timestamp.after.max.ms": str(2**63 - 1)}
    )
    async with running_emulator(slow_speaks(0)) as emulator:
        (agent,) = seed_agents(emulator, 1, "future")
        far, after = speaks("future", [agent], 2)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for command, stamp in ((far, 253_402_300_800_000), (after, None)):
                await producer.send_and_wait(
                    topics["commands"],
                    msgspec.json.encode(command),
                    key=agent.encode(),
                    timestamp_ms=stamp,
                )
        finally:
            await producer.stop()
        settings = make_settings(kafka_bootstrap, topics, emulator.api_url)
        async with (
            WorkerGroup(settings, tmp_path) as group,
            ResultsTail(kafka_bootstrap, topics["results"]) as tail,
        ):
            await group.join()
            await tail.wait_for(2, within=WITHIN, check=group.check)
            outcomes = {r.command_id: r.outcome for r in tail.results}
    assert outcomes == {far["id"]: "succeeded", after["id"]: "succeeded"}
    assert set(group.terminated_exit_codes().values()) == {0}


async def test_a_backlog_of_1_mb_commands_stays_within_the_memory_budget(
    kafka_bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    """300 commands of 1 MB each (300 MB) waiting, each taking the API 2 s: the worker buffers
    at most its byte budget (64 MiB) plus one fetch, and its peak RSS stays within the chart's
    512 MiB limit."""
    topics = await pipeline_topics(topic_factory, 12)
    padding = "x" * 990_000
    commands = [
        {"command": "agent.update", "id": f"big-{n}", "agent_id": f"nobody-{n}",
         "properties": {"padding": padding}}
        for n in range(300)
    ]  # fmt: skip
    await produce(kafka_bootstrap, topics["commands"], commands, max_request_size=1_048_576)
    async with running_emulator(slow_speaks(2, "agent.update")) as emulator:
        settings = make_settings(kafka_bootstrap, topics, emulator.api_url)
        async with (
            WorkerGroup(settings, tmp_path) as group,
            ResultsTail(kafka_bootstrap, topics["results"]) as tail,
        ):
            member = await group.join()
            peak_buffered = 0.0
            while len(tail.per_command) < len(commands):
                group.check()
                peak_buffered = max(peak_buffered, await metric(member, "convoai_buffered_bytes"))
                await tail.poll(100)
            rss = peak_rss_mib(member.process.pid)
    budget = settings.buffer_max_bytes
    report = (
        f"1 MB backlog: peak buffered {peak_buffered / 2**20:.1f} MiB of a "
        f"{budget / 2**20:.0f} MiB budget, peak RSS {rss:.0f} MiB"
    )
    show(report)
    assert peak_buffered <= budget + budget // 4, report  # plus at most one fetch
    assert rss <= 512, report
