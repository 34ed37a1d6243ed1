"""A backlog far larger than the buffers: partitions pause and memory stays bounded."""

from __future__ import annotations

import asyncio

import pytest

from tests.pipeline.conftest import COMMAND_PARTITIONS
from tests.pipeline.harness import (
    in_process_worker,
    make_settings,
    produce,
    run_emulator,
    wait_for_results,
)
from worker.emulator.config import EmulatorConfig
from worker.emulator.faults import FaultSettings
from worker.pipeline.consumer import MAX_POLL_RECORDS

pytestmark = pytest.mark.kafka

BUFFER = 25


async def test_backlog_pauses_partitions_and_bounds_buffered_records(
    kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    """With 1,500 queued commands on 8 slow keys the worker never holds more than its bound."""
    config = EmulatorConfig(faults=FaultSettings(latency_ms=2))
    commands = [
        {"command": "agent.speak", "id": f"bp-{i}", "agent_id": f"agent-{i % 8}", "text": "hi"}
        for i in range(1500)
    ]
    await produce(kafka_bootstrap, topics["commands"], commands)
    async with run_emulator(config) as emulator:
        settings = make_settings(
            kafka_bootstrap, topics, emulator.base_url, partition_buffer=BUFFER
        )
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
    # one fetch may overshoot the threshold by at most a batch per partition
    assert 0 < peak_buffered <= COMMAND_PARTITIONS * (BUFFER + MAX_POLL_RECORDS)
