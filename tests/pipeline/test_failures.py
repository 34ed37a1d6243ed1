"""The worker under crashes, poison records, rebalances and shutdown, on the real broker."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from contracts import decode_result
from contracts.headers import (
    DLQ_EXCEPTION_CLASS_NAME,
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_TOPIC,
    DLQ_STAGE,
)
from tests.emulator.harness import RunningEmulator, running_emulator
from tests.pipeline.group import api_calls_per_command
from tests.pipeline.harness import (
    committed_offsets,
    end_offsets,
    in_process_worker,
    make_settings,
    produce,
    read_topic,
    spawn_worker,
    stop_process,
    wait_for_results,
    wait_ready,
)
from tests.pipeline.scenarios import SPEAKS_PER_AGENT, agent_lifecycle
from worker.emulator.config import EmulatorConfig
from worker.emulator.faults import FaultSettings
from worker.kafka.topics import MissingTopicsError, ensure_topics

pytestmark = pytest.mark.kafka


async def test_sigkill_mid_stream_then_restart_loses_nothing(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    """After SIGKILL and a restart every command has a final result; duplicates stay bounded."""
    commands = agent_lifecycle("kill", 100)
    ids = {c["id"] for c in commands}
    await produce(kafka_bootstrap, topics["commands"], commands)
    slow = EmulatorConfig(max_agents_per_app=1000, faults=FaultSettings(latency_ms=20))
    async with running_emulator(slow) as emulator:
        settings = make_settings(kafka_bootstrap, topics, emulator.api_url, max_in_flight=50)
        log = str(tmp_path / "worker.log")
        first = spawn_worker(settings, log)
        try:
            done = 0
            for _ in range(600):
                done = len(await read_topic(kafka_bootstrap, topics["results"]))
                if done >= len(commands) // 3:
                    break
                await asyncio.sleep(0.05)
            assert first.poll() is None, Path(log).read_text()
        finally:
            assert await stop_process(first, signal.SIGKILL) == -signal.SIGKILL
        assert done < len(commands), "the worker was killed mid-stream"

        second = spawn_worker(settings, log)
        try:
            await wait_ready(settings.http_port)
            results = await wait_for_results(kafka_bootstrap, topics["results"], ids, within=90)
        finally:
            assert await stop_process(second) == 0, Path(log).read_text()[-3000:]

    per_id = Counter(r.command_id for r in results)
    assert set(per_id) == ids
    duplicates = sum(per_id.values()) - len(ids)
    assert duplicates <= settings.max_in_flight, duplicates
    # at the API: commands running when the worker died ran again, and only those
    spoken = api_calls_per_command(emulator, "agent.speak")
    repeated = sum(count - 1 for count in spoken.values())
    assert len(spoken) == 100 * SPEAKS_PER_AGENT
    assert repeated <= settings.max_in_flight, repeated
    # Name addressing survived the restart (state topic): no command failed to find its agent.
    assert {r.outcome for r in results} == {"succeeded"}, Counter(r.outcome for r in results)


async def test_poison_records_go_to_dlq_and_the_partition_moves_on(
    kafka_bootstrap: str, topics: dict[str, str], emulator: RunningEmulator
) -> None:
    """Undecodable and invalid records are dead-lettered with context; later records run."""
    good_before = {"command": "agent.list", "id": "ok-1"}
    good_after = {"command": "number.list", "id": "ok-2"}
    poison = [
        b"\x00\xff not json",
        b"[1, 2, 3]",
        msgspec.json.encode({"command": "agent.speak", "id": "bad-1", "agent_id": "A", "text": 7}),
        msgspec.json.encode({"command": "agent.fly", "id": "bad-2"}),
    ]
    await produce(kafka_bootstrap, topics["commands"], [good_before, *poison, good_after])
    settings = make_settings(kafka_bootstrap, topics, emulator.api_url)
    async with in_process_worker(settings):
        results = await wait_for_results(
            kafka_bootstrap, topics["results"], {"ok-1", "ok-2", "bad-1", "bad-2"}
        )
        dead = await read_topic(kafka_bootstrap, topics["dlq"])
    originals = {
        r.value: (r.partition, r.offset)
        for r in await read_topic(kafka_bootstrap, topics["commands"])
    }
    by_id = {r.command_id: r for r in results}
    assert by_id["ok-1"].outcome == "succeeded"
    assert by_id["ok-2"].outcome == "succeeded"
    assert by_id["bad-1"].outcome == "rejected"
    assert by_id["bad-1"].error is not None
    assert by_id["bad-1"].error.message == "$.text: expected str, got int"
    assert by_id["bad-2"].outcome == "rejected"

    assert sorted(r.value for r in dead) == sorted(poison)
    for record in dead:
        headers = dict(record.headers)
        assert headers[DLQ_ORIGINAL_TOPIC].decode() == topics["commands"]
        location = (int(headers[DLQ_ORIGINAL_PARTITION]), int(headers[DLQ_ORIGINAL_OFFSET]))
        assert location == originals[record.value]
        assert headers[DLQ_STAGE] == b"VALUE_CONVERTER"
        assert headers[DLQ_EXCEPTION_CLASS_NAME].endswith(b"CommandDecodeError")


async def test_sigterm_with_hundreds_in_flight_commits_nothing_without_result(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    """SIGTERM during slow API calls: every committed offset has its result on Kafka."""
    config = EmulatorConfig(faults=FaultSettings(latency_ms=500, latency_jitter_ms=2500))
    async with running_emulator(config) as emulator:
        commands = [{"command": "agent.list", "id": f"slow-{i}", "limit": i} for i in range(400)]
        await produce(kafka_bootstrap, topics["commands"], commands)
        settings = make_settings(kafka_bootstrap, topics, emulator.api_url, drain_grace_seconds=1.0)
        log = str(tmp_path / "worker.log")
        worker = spawn_worker(settings, log)
        try:
            for _ in range(300):
                if len(emulator.requests()) >= 200:
                    break
                await asyncio.sleep(0.05)
            assert len(emulator.requests()) >= 200, Path(log).read_text()[-3000:]
        finally:
            assert await stop_process(worker, signal.SIGTERM) == 0, Path(log).read_text()[-3000:]

    committed = await committed_offsets(kafka_bootstrap, settings.group_id, topics["commands"])
    records = await read_topic(kafka_bootstrap, topics["commands"])
    with_result = {
        decode_result(r.value).command_id
        for r in await read_topic(kafka_bootstrap, topics["results"])
    }
    below_commit = [r for r in records if r.offset < committed[r.partition]]
    assert below_commit, "the drain committed the commands that finished"
    missing = [
        r.offset for r in below_commit if msgspec.json.decode(r.value)["id"] not in with_result
    ]
    assert missing == []
    assert sum(committed.values()) < len(commands), "some commands were still running at SIGTERM"


async def test_expired_command_is_not_sent(
    kafka_bootstrap: str, topics: dict[str, str], emulator: RunningEmulator
) -> None:
    """A command past `expires_at` gets outcome `expired` and never reaches the API."""
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    await produce(
        kafka_bootstrap,
        topics["commands"],
        [
            {
                "command": "agent.speak",
                "id": "late",
                "agent_id": "A1",
                "text": "hi",
                "expires_at": past,
            }
        ],
    )
    settings = make_settings(kafka_bootstrap, topics, emulator.api_url)
    async with in_process_worker(settings):
        (result,) = await wait_for_results(kafka_bootstrap, topics["results"], {"late"})
    assert result.outcome == "expired"
    assert result.attempts == 0
    assert emulator.requests("agent.speak") == []


async def test_redelivered_command_id_is_not_executed_again_after_restart(
    kafka_bootstrap: str, topics: dict[str, str], emulator: RunningEmulator
) -> None:
    """A command id with a published result is skipped, also by a freshly started worker."""
    speak = {"command": "agent.speak", "id": "once", "agent_id": "A1", "text": "hi"}
    await produce(kafka_bootstrap, topics["commands"], [{"command": "agent.list", "id": "warm"}])
    settings = make_settings(kafka_bootstrap, topics, emulator.api_url)
    async with in_process_worker(settings):
        await produce(kafka_bootstrap, topics["commands"], [speak])
        await wait_for_results(kafka_bootstrap, topics["results"], {"warm", "once"})
    # the producer "retries": the same command again, read by a new worker process state
    await produce(
        kafka_bootstrap, topics["commands"], [speak, {"command": "agent.list", "id": "last"}]
    )
    async with in_process_worker(settings) as worker:
        results = await wait_for_results(kafka_bootstrap, topics["results"], {"last"})
        deduplicated = worker.metrics.commands_deduplicated.labels("agent.speak")._value.get()
    assert [r.command_id for r in results].count("once") == 1
    assert len(emulator.requests("agent.speak")) == 1
    assert deduplicated == 1
    committed = await committed_offsets(kafka_bootstrap, settings.group_id, topics["commands"])
    assert committed == await end_offsets(kafka_bootstrap, topics["commands"])


async def test_missing_topics_are_named_when_creation_is_off(
    kafka_bootstrap: str, topics: dict[str, str], emulator: RunningEmulator
) -> None:
    """Without permission to create topics the worker says exactly which are missing."""
    settings = make_settings(
        kafka_bootstrap, {**topics, "dlq": topics["dlq"] + ".absent"}, emulator.api_url
    )
    with pytest.raises(MissingTopicsError) as raised:
        await ensure_topics(settings)
    assert raised.value.missing == [topics["dlq"] + ".absent"]


async def test_static_membership_works_end_to_end(
    kafka_bootstrap: str, topics: dict[str, str], emulator: RunningEmulator
) -> None:
    """With CONVOAI_GROUP_INSTANCE_ID set the worker joins as a static member and processes."""
    await produce(
        kafka_bootstrap, topics["commands"], [{"command": "agent.list", "id": "static-1"}]
    )
    settings = make_settings(
        kafka_bootstrap, topics, emulator.api_url, group_instance_id="worker-0"
    )
    async with in_process_worker(settings):
        (result,) = await wait_for_results(kafka_bootstrap, topics["results"], {"static-1"})
    assert result.outcome == "succeeded"
