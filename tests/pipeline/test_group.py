"""A consumer group of worker processes on the real broker, judged by what reaches the API.

Acceptance tests of the delivery guarantees across membership changes: members join, leave
gracefully or die while thousands of speaks flow, and the emulator's request log shows how often
each command really reached the API. Each run reports its figures (`pytest -s` shows them).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiokafka import ConsumerRecord

from contracts.headers import DLQ_STAGE, STAGE_DECODE
from tests.conftest import TopicFactory
from tests.emulator.harness import RunningEmulator, running_emulator
from tests.kafka import max_message_bytes
from tests.pipeline.conftest import pipeline_topics
from tests.pipeline.group import (
    Delivery,
    Member,
    ResultsTail,
    Timeline,
    TopicTail,
    WorkerGroup,
    api_calls_per_command,
    dead_letter_problems,
    seed_agents,
    show,
)
from tests.pipeline.harness import (
    OPEN_EMULATOR,
    committed_offsets,
    make_settings,
    produce,
    read_topic,
    scrape,
    total,
)
from tests.pipeline.scenarios import speaks
from worker.emulator.config import EmulatorConfig
from worker.emulator.faults import FaultSettings

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 12
SPEAKS_PER_AGENT = 10
# Every speak takes 50 ms at the API, so the in-flight limit sets each member's pace; small
# limits stretch the stream over the membership changes.
SLOW_API = EmulatorConfig(
    max_agents_per_app=100_000,
    request_log_size=100_000,
    faults=FaultSettings(latency_ms=50),
    rules=OPEN_EMULATOR.rules,
)
MAX_IN_FLIGHT = 10
ALL_RESULTS_WITHIN = 120.0
STAGE_WITHIN = 30.0  # for one poison record and the good commands around it


@pytest.fixture
async def wide_topics(topic_factory: TopicFactory) -> dict[str, str]:
    """Commands and results with 12 partitions (room for four members), state and DLQ."""
    return await pipeline_topics(topic_factory, PARTITIONS)


@dataclass
class SpeakRun:
    """Speaks produced to agents the emulator already runs, a group to run them, their results."""

    emulator: RunningEmulator
    ids: list[str]
    group: WorkerGroup
    tail: ResultsTail
    timeline: Timeline = field(default_factory=Timeline)

    async def reach(self, fraction: float) -> None:
        """Wait until `fraction` of the commands have a result (failing if a member died)."""
        await self.tail.wait_for(
            fraction * len(self.ids), within=ALL_RESULTS_WITHIN, check=self.group.check
        )
        self.timeline.mark(f"{fraction:.0%} of the commands have a result")

    async def mark(self, event: str) -> None:
        """Note `event` on the timeline with the progress made so far."""
        await self.tail.catch_up()
        self.timeline.mark(f"{event} ({len(self.tail.per_command)} commands with a result)")

    async def finish(self) -> Delivery:
        """Stop the members (SIGTERM); results and API calls per command."""
        await self.group.stop_all()
        self.timeline.mark("all members stopped (SIGTERM)")
        await self.tail.catch_up()
        calls = api_calls_per_command(self.emulator, "agent.speak")
        return Delivery.count(self.ids, self.tail.per_command, calls)


@contextlib.asynccontextmanager
async def speak_run(
    bootstrap: str, topics: dict[str, str], log_dir: Path, prefix: str, agents: int
) -> AsyncIterator[SpeakRun]:
    """Start `agents` agents in a slow emulator and produce speaks to each; no member yet."""
    async with running_emulator(SLOW_API) as emulator:
        commands = speaks(prefix, seed_agents(emulator, agents, prefix), SPEAKS_PER_AGENT)
        await produce(bootstrap, topics["commands"], commands)
        settings = make_settings(bootstrap, topics, emulator.api_url, max_in_flight=MAX_IN_FLIGHT)
        async with (
            WorkerGroup(settings, log_dir) as group,
            ResultsTail(bootstrap, topics["results"]) as tail,
        ):
            yield SpeakRun(emulator, [c["id"] for c in commands], group, tail)


async def test_members_joining_and_leaving_gracefully_run_every_command_once(
    kafka_bootstrap: str, wide_topics: dict[str, str], tmp_path: Path
) -> None:
    """While members join and one leaves by SIGTERM, every command gets exactly one result and
    reaches the API exactly once, and every member stopped by SIGTERM exits 0."""
    async with speak_run(kafka_bootstrap, wide_topics, tmp_path, "scale", 600) as run:
        group = run.group
        await group.join()
        await group.join()
        await run.mark("worker-1 and worker-2 ready")
        await run.reach(0.25)
        await group.join()
        await run.mark("worker-3 joined and ready")
        await run.reach(0.50)
        leaving = group.members[0]
        async with asyncio.TaskGroup() as background:  # the leave drains while others go on
            run.timeline.mark(f"SIGTERM to {leaving.name}")
            leave = background.create_task(group.terminate(leaving))
            leave.add_done_callback(
                lambda _: run.timeline.mark(f"{leaving.name} exited, code {leaving.exit_code}")
            )
            await run.reach(0.75)
            await group.join()
            await run.mark("worker-4 joined and ready")
            joined_mid_stream = len(run.tail.per_command) < len(run.ids)
            await run.reach(1.0)
        figures = await run.finish()

    exits = group.terminated_exit_codes()
    report = f"scaling: {figures}\nSIGTERM exit codes: {exits}\n{run.timeline}"
    show(report)
    assert joined_mid_stream, "the last member joined after the stream ended:\n" + report
    assert figures.without_result == 0, report
    assert figures.duplicate_results == 0, report
    assert figures.repeated_calls == 0, report
    assert set(exits.values()) == {0}, report


async def test_sigkill_of_a_member_with_another_alive(
    kafka_bootstrap: str, wide_topics: dict[str, str], tmp_path: Path
) -> None:
    """After one member is SIGKILLed mid-stream the survivor takes over: every command gets a
    result, and only the killed member's in-flight commands may reach the API twice."""
    async with speak_run(kafka_bootstrap, wide_topics, tmp_path, "kill", 300) as run:
        killed, _survivor = await run.group.join(), await run.group.join()
        await run.mark("worker-1 and worker-2 ready")
        await run.reach(0.4)
        await run.group.kill(killed)
        await run.mark(f"{killed.name} SIGKILLed")
        killed_mid_stream = len(run.tail.per_command) < len(run.ids)
        await run.reach(1.0)
        figures = await run.finish()

    limit = killed.settings.max_in_flight
    report = f"sigkill: {figures}\nkilled member's max_in_flight {limit}\n{run.timeline}"
    show(report)
    assert killed_mid_stream, "the member was killed after the stream ended:\n" + report
    assert figures.without_result == 0, report
    assert figures.repeated_calls <= limit, report


async def pod_processes(port: int) -> list[dict[str, Any]]:
    """What the pod's /readyz says of each of its worker processes (its pid and own report)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/readyz") as response,
    ):
        processes: list[dict[str, Any]] = (await response.json())["details"]["processes"]
    return processes


async def partitions_of_each(pod: Member, *, besides: dict[int, int] | None = None) -> list[int]:
    """The partitions assigned to each process of `pod`, once every process has some (and,
    with `besides`, runs as another pid than those given by index)."""
    deadline = time.monotonic() + ALL_RESULTS_WITHIN
    while True:
        assert pod.running, pod.log_tail()
        processes = await pod_processes(pod.settings.http_port)
        shares = [p.get("details", {}).get("assigned_partitions", 0) for p in processes]
        renewed = all(processes[i]["pid"] not in (None, pid) for i, pid in (besides or {}).items())
        if all(shares) and renewed:
            return shares
        assert time.monotonic() < deadline, f"processes never all assigned: {processes}"
        await asyncio.sleep(0.2)


async def test_the_processes_of_one_pod_share_the_group_and_run_every_command_once(
    kafka_bootstrap: str, wide_topics: dict[str, str], tmp_path: Path
) -> None:
    """`run --processes 2`: both processes are members of the group, the partitions split
    between them; every command gets exactly one result and reaches the API once, the pod's one
    /metrics counts them all, and SIGTERM drains both (exit 0, every offset committed)."""
    async with speak_run(kafka_bootstrap, wide_topics, tmp_path, "pod", 300) as run:
        pod = await run.group.join(processes=2)
        await run.mark("a pod of 2 processes ready")
        shares = await partitions_of_each(pod)
        await run.reach(1.0)
        completed = total(await scrape(pod.settings.http_port), "convoai_commands_completed_total")
        figures = await run.finish()
        committed = await committed_offsets(
            kafka_bootstrap, pod.settings.group_id, wide_topics["commands"]
        )

    report = f"one pod, 2 processes: {figures}, partitions {shares}\n{run.timeline}"
    show(report)
    assert len(shares) == 2, report
    assert sum(shares) == PARTITIONS, report
    assert completed == len(run.ids), report
    assert figures.without_result == 0, report
    assert figures.duplicate_results == 0, report
    assert figures.repeated_calls == 0, report
    assert sum(committed.values()) == len(run.ids), report
    assert run.group.terminated_exit_codes() == {pod.name: 0}, pod.log_tail()


async def test_a_process_of_a_pod_killed_mid_stream_is_restarted_and_nothing_is_lost(
    kafka_bootstrap: str, wide_topics: dict[str, str], tmp_path: Path
) -> None:
    """SIGKILL to one process of a pod of 2: the parent starts it again, it rejoins the group and
    takes partitions back; every command gets a result (only the killed process's in-flight
    commands may reach the API twice), the restart is counted, and the pod still drains to 0."""
    async with speak_run(kafka_bootstrap, wide_topics, tmp_path, "pod-kill", 300) as run:
        pod = await run.group.join(processes=2)
        await partitions_of_each(pod)
        await run.reach(0.3)
        killed = (await pod_processes(pod.settings.http_port))[1]["pid"]
        os.kill(killed, signal.SIGKILL)
        await run.mark(f"process 1 (pid {killed}) SIGKILLed")
        killed_mid_stream = len(run.tail.per_command) < len(run.ids)
        shares = await partitions_of_each(pod, besides={1: killed})
        await run.mark(f"process 1 restarted, partitions {shares}")
        await run.reach(1.0)
        samples = await scrape(pod.settings.http_port)
        figures = await run.finish()

    report = f"one pod, a process killed: {figures}\n{run.timeline}"
    show(report)
    assert killed_mid_stream, "the process was killed after the stream ended:\n" + report
    restarts = total(samples, "convoai_worker_process_restarts_total", process="1")
    assert restarts == 1, report
    assert figures.without_result == 0, report
    assert figures.repeated_calls <= MAX_IN_FLIGHT, report
    assert run.group.terminated_exit_codes() == {pod.name: 0}, pod.log_tail()


def seed_numbers(emulator: RunningEmulator, count: int) -> bytes:
    """Import `count` phone numbers; the body `number.list` then answers with."""
    for n in range(count):
        emulator.state.numbers.add(
            {
                "provider": "byo",
                "phone_number": f"+1555{n:07d}",
                "label": f"line {n} " + "-" * 80,
                "inbound_config": {},
                "outbound_config": {},
            }
        )
    return msgspec.json.encode(emulator.state.numbers.list())


async def test_poison_records_and_huge_responses_never_stop_the_worker(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    """No record, however broken or large, and no API response, however big, stops the worker:
    each poison record is dead-lettered and each huge response summarised in its result."""
    # the largest record the broker takes: its dead-letter copy (plus headers) cannot fit
    limit = await max_message_bytes(kafka_bootstrap, topics["commands"])
    huge = b"{" + b"x" * (limit - 1024)
    poisons: dict[str, tuple[bytes, bytes | None]] = {  # name: (key, value)
        "empty id": (
            b"x",
            msgspec.json.encode(
                {"command": "agent.speak", "id": "", "agent_id": "x", "text": "hi"}
            ),
        ),
        "key only (null value)": (b"poison-key-only", None),
        "not UTF-8": (b"poison-not-utf8", b'{"command": "agent.list", "id": "\xff\xfe"}'),
        f"{len(huge)}-byte malformed value": (b"poison-huge", huge),
    }
    huge_response = {"command": "number.list", "id": "huge-response"}
    stages = [
        *poisons.items(),
        ("API response over 2 MiB", (b"huge-response", msgspec.json.encode(huge_response))),
    ]
    async with running_emulator(OPEN_EMULATOR) as emulator:
        body = seed_numbers(emulator, 12_000)
        assert len(body) > 2 * 1024 * 1024
        settings = make_settings(kafka_bootstrap, topics, emulator.api_url)
        good: set[str] = set()
        async with (
            WorkerGroup(settings, tmp_path) as group,
            ResultsTail(kafka_bootstrap, topics["results"]) as results,
            TopicTail(kafka_bootstrap, topics["dlq"]) as dlq,
        ):
            worker = await group.join()
            for n, (name, (key, value)) in enumerate(stages):
                # good commands with the poison's key: the one after runs only once it is handled
                before, after = (f"good-{n}-{i}" for i in (1, 2))
                good |= {before, after}
                await produce(
                    kafka_bootstrap,
                    topics["commands"],
                    [(key, agent_list(before)), (key, value), (key, agent_list(after))],
                    max_request_size=2 * limit,  # as large as the broker takes
                )
                # a poison record gets a dead letter, the huge response a result
                awaited = (
                    {before, after} if name in poisons else {before, after, huge_response["id"]}
                )
                dead_key = key if name in poisons else None
                await handled(
                    name,
                    worker=worker,
                    results=results,
                    awaited=awaited,
                    dlq=dlq,
                    dead_key=dead_key,
                )
            alive_after_all = worker.running
        originals = await read_topic(kafka_bootstrap, topics["commands"])

    assert alive_after_all, worker.log_tail()
    outcomes = {cid: r.outcome for r in results.results if (cid := r.command_id) in good}
    assert outcomes == dict.fromkeys(good, "succeeded")
    for name, (key, value) in poisons.items():
        dead = [r for r in dlq.records if r.key == key]
        assert len(dead) == 1, f"{name}: {len(dead)} dead letters"
        (original,) = [r for r in originals if r.key == key and r.value == value]
        check_dead_letter(name, dead[0], original)
    (summary,) = [r for r in results.results if r.command_id == huge_response["id"]]
    assert summary.outcome == "succeeded"
    assert summary.data == {
        "truncated": True,
        "bytes": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }


def agent_list(command_id: str) -> bytes:
    """A good command."""
    return msgspec.json.encode({"command": "agent.list", "id": command_id})


async def handled(
    name: str,
    *,
    worker: Member,
    results: ResultsTail,
    awaited: set[str],
    dlq: TopicTail,
    dead_key: bytes | None,
) -> None:
    """Wait until `awaited` commands have results and `dead_key` (if any) a dead letter; fail at
    once, naming the poison record `name`, when the worker exits meanwhile."""
    deadline = time.monotonic() + STAGE_WITHIN
    while not (
        awaited <= results.per_command.keys()
        and (dead_key is None or any(r.key == dead_key for r in dlq.records))
    ):
        assert worker.running, (
            f"the worker exited (code {worker.process.returncode}) on the poison record "
            f"{name!r}:\n{worker.log_tail()}"
        )
        assert time.monotonic() < deadline, f"{name!r} not handled within {STAGE_WITHIN:.0f} s"
        await results.poll(wait_ms=100)
        await dlq.poll(wait_ms=100)


def check_dead_letter(
    name: str, dead: ConsumerRecord[bytes, bytes], original: ConsumerRecord[bytes, bytes]
) -> None:
    """The dead letter of `original` carries the Connect context of a decode failure; a copy
    too large to fit is a prefix with the original's size and SHA-256 in headers."""
    assert dead_letter_problems(dead, original) == [], name
    assert dict(dead.headers)[DLQ_STAGE].decode() == STAGE_DECODE, name
