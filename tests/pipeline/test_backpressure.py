"""A backlog far larger than the buffers: partitions pause and memory stays bounded."""

from __future__ import annotations

import asyncio

import pytest

from tests.emulator.harness import running_emulator
from tests.pipeline.conftest import COMMAND_PARTITIONS
from tests.pipeline.harness import (
    in_process_worker,
    make_settings,
    produce,
    wait_for_results,
)
from worker.emulator.config import EmulatorConfig
from worker.emulator.faults import FaultRule, FaultSettings
from worker.kafka.aio import MAX_POLL_RECORDS

pytestmark = pytest.mark.kafka

BUFFER = 25


async def test_backlog_pauses_partitions_and_bounds_buffered_records(
    kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    """With 6,000 queued commands the worker holds at most its buffer plus one fetch per
    partition: far below the backlog, which a worker that never pauses would hold."""
    config = EmulatorConfig(faults=FaultSettings(latency_ms=2))
    commands = [
        {"command": "agent.speak", "id": f"bp-{i}", "agent_id": f"agent-{i % 8}", "text": "hi"}
        for i in range(6000)
    ]
    await produce(kafka_bootstrap, topics["commands"], commands)
    async with running_emulator(config) as emulator:
        settings = make_settings(kafka_bootstrap, topics, emulator.api_url, partition_buffer=BUFFER)
        async with in_process_worker(settings) as worker:
            consumer = worker.consumer
            assert consumer is not None
            peak_buffered = 0
            paused_seen = False
            for _ in range(400):
                peak_buffered = max(peak_buffered, consumer.buffered)
                paused_seen = paused_seen or consumer.paused_partitions > 0
                await asyncio.sleep(0.01)
            await wait_for_results(
                kafka_bootstrap, topics["results"], {c["id"] for c in commands}, within=120
            )
    assert paused_seen
    # a partition is paused once it holds BUFFER records; the fetch that crossed the threshold
    # may overshoot it by up to one fetch (MAX_POLL_RECORDS)
    bound = COMMAND_PARTITIONS * (BUFFER + MAX_POLL_RECORDS)
    assert bound < len(commands) / 2  # a worker that never pauses would exceed it
    assert 0 < peak_buffered <= bound


async def test_a_slow_key_does_not_hold_back_other_keys(
    kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    """While one agent's command hangs at the API, every other agent's commands complete."""
    slow_think = FaultRule(action="delay", operation="agent.think", delay_ms=4000)
    config = EmulatorConfig(faults=FaultSettings(rules=[slow_think]))
    stuck = [
        {"command": "agent.think", "id": "stuck-1", "agent_id": "slow-agent", "text": "hmm"},
        {"command": "agent.speak", "id": "stuck-2", "agent_id": "slow-agent", "text": "later"},
    ]
    others = [
        {"command": "agent.speak", "id": f"free-{i}", "agent_id": f"agent-{i}", "text": "now"}
        for i in range(40)
    ]
    await produce(kafka_bootstrap, topics["commands"], [*stuck, *others])
    async with running_emulator(config) as emulator:
        settings = make_settings(kafka_bootstrap, topics, emulator.api_url)
        async with in_process_worker(settings):
            early = await wait_for_results(
                kafka_bootstrap, topics["results"], {c["id"] for c in others}, within=30
            )
            finished_early = {r.command_id for r in early}
            assert "stuck-1" not in finished_early, "the slow think was still running"
            assert "stuck-2" not in finished_early, "its key's next command waited behind it"
            await wait_for_results(kafka_bootstrap, topics["results"], {"stuck-1", "stuck-2"})
