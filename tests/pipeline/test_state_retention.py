"""10,000 agents started and stopped: memory and the compacted state topic shrink to the live."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from contracts import decode_agent_state, decode_result
from devtools.workload import agent_properties
from tests.conftest import TopicFactory
from tests.emulator.harness import RunningEmulator
from tests.pipeline.harness import (
    committed_offsets,
    end_offsets,
    make_settings,
    produce,
    read_topic,
    scrape,
    spawn_worker,
    stop_process,
    total,
    wait_ready,
)

pytestmark = pytest.mark.kafka

STOPPED_AGENTS = 10_000
LIVE_AGENTS = 20
RETENTION_SECONDS = 3.0
ROLL_KEY = b"segment-roll"  # a tombstone for a key no agent has: closes the active segment
COMPACTED_STATE = {
    "cleanup.policy": "compact",
    "segment.ms": "1000",  # roll segments quickly: only closed segments are compacted
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": "0",
    "delete.retention.ms": "1000",  # how long consumers still see tombstones
}


async def roll_segments(bootstrap: str, topic: str, partitions: int) -> None:
    """Append a tombstone of an unused key to every partition, so that the records before it
    leave the active segment and become compactable."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition in range(partitions):
            await producer.send_and_wait(topic, key=ROLL_KEY, value=None, partition=partition)
    finally:
        await producer.stop()


async def until(condition: Any, what: str, within: float) -> None:
    """Await `condition()` until true, at most `within` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(1.0)


async def test_ten_thousand_agents_started_and_stopped_leave_only_the_live_set(
    kafka_bootstrap: str, topic_factory: TopicFactory, emulator: RunningEmulator, tmp_path: Path
) -> None:
    """Start 10,020 agents and stop 10,000 through a worker process: once the retention has
    passed its directory holds the 20 live agents, every stopped agent got one tombstone, and
    after compaction the state topic holds exactly the live agents' records."""
    topics = {
        "commands": await topic_factory("commands", partitions=4),
        "results": await topic_factory("results", partitions=4),
        "state": await topic_factory("state", partitions=2, configs=COMPACTED_STATE),
        "dlq": await topic_factory("dlq"),
    }
    names = [f"bot-{n}" for n in range(STOPPED_AGENTS + LIVE_AGENTS)]
    commands: list[dict[str, Any]] = [
        {
            "command": "agent.start",
            "id": f"start-{name}",
            "name": name,
            "properties": agent_properties(name),
        }
        for name in names
    ]
    commands += [
        {"command": "agent.stop", "id": f"stop-{name}", "name": name}
        for name in names[:STOPPED_AGENTS]
    ]
    await produce(kafka_bootstrap, topics["commands"], commands)
    settings = make_settings(
        kafka_bootstrap, topics, emulator.api_url, state_retention_seconds=RETENTION_SECONDS
    )
    port = settings.http_port
    log = tmp_path / "worker.log"
    worker = spawn_worker(settings, str(log))
    try:
        await wait_ready(port)
        end = await end_offsets(kafka_bootstrap, topics["commands"])

        async def all_committed() -> bool:
            return (
                await committed_offsets(kafka_bootstrap, settings.group_id, topics["commands"])
                == end
            )

        await until(all_committed, "every command finished", within=240)
        results = [
            decode_result(r.value) for r in await read_topic(kafka_bootstrap, topics["results"])
        ]
        assert Counter(r.outcome for r in results) == {"succeeded": len(commands)}
        written = sum((await end_offsets(kafka_bootstrap, topics["state"])).values())
        assert written >= 2 * STOPPED_AGENTS + LIVE_AGENTS  # STARTING and STOPPING at least

        async def directory_is_the_live_set() -> bool:
            return total(await scrape(port), "convoai_agents_tracked") == LIVE_AGENTS

        await until(directory_is_the_live_set, "the directory back to the live agents", within=60)
        metrics = await scrape(port)
        upkeep = "convoai_agent_state_upkeep_total"
        assert total(metrics, upkeep, kind="tombstone") == STOPPED_AGENTS
        assert total(metrics, upkeep, kind="repair") == 0

        async def compacted_to_the_live_set() -> bool:
            await roll_segments(kafka_bootstrap, topics["state"], partitions=2)
            kept = [
                r for r in await read_topic(kafka_bootstrap, topics["state"]) if r.key != ROLL_KEY
            ]
            return len(kept) == LIVE_AGENTS

        await until(compacted_to_the_live_set, "compaction down to the live agents", within=180)
    finally:
        assert await stop_process(worker) == 0, log.read_text()[-3000:]
    kept = [r for r in await read_topic(kafka_bootstrap, topics["state"]) if r.key != ROLL_KEY]
    states = [decode_agent_state(r.value) for r in kept if r.value is not None]
    assert sorted(state.name or "" for state in states) == sorted(names[STOPPED_AGENTS:])
    assert {state.status for state in states} == {"STARTING"}  # as their starts answered
