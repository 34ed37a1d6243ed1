"""A failing key, a failing background task: contained, reported, and recovered in order."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from devtools.workload import speaks
from tests.component.harness import (
    ScriptedApi,
    produce,
    result_ids,
    running,
    settings,
    until,
)
from worker import supervision
from worker.kafka.memory import InMemoryBroker
from worker.metrics import Metrics
from worker.observability.health import Health
from worker.pipeline import offset_map
from worker.pipeline.consumer import CommandConsumer, Work

COMMANDS = "convoai.commands"


async def consume(
    broker: InMemoryBroker, fail_on: bytes | None
) -> tuple[CommandConsumer, list[bytes]]:
    """Run a consumer whose processing raises for the record with value `fail_on`."""
    seen: list[bytes] = []

    async def process(work: Work) -> None:
        value = work.record.value or b""
        if value == fail_on:
            raise RuntimeError("a bug in processing")
        seen.append(value)

    config = settings()
    consumer = CommandConsumer(
        broker.command_source(COMMANDS, "fatal"),
        process,
        config,
        Metrics(CollectorRegistry()),
        Health(config),
    )
    await consumer.start()
    return consumer, seen


async def test_a_key_that_failed_runs_nothing_more_and_the_worker_stops() -> None:
    """After a failure, the key's later records wait for a restart; then all run in order."""
    broker = InMemoryBroker()
    broker.create_topic(COMMANDS, 1)
    for key, value in [(b"k", b"k1"), (b"k", b"k2"), (b"j", b"j1"), (b"k", b"k3")]:
        broker.produce(COMMANDS, value, key=key)
    consumer, seen = await consume(broker, fail_on=b"k1")
    await asyncio.wait_for(consumer.run(), 5)
    assert consumer.fatal is not None
    assert "partition 0 offset 0" in str(consumer.fatal)
    assert seen == [b"j1"]
    committed = broker.committed("fatal", COMMANDS, 0)
    assert committed is not None
    assert committed.offset == 0  # not past the failed record
    assert offset_map.decode(0, committed.metadata) == {2}  # j1 is finished
    await consumer.close()

    restarted, seen = await consume(broker, fail_on=None)
    runner = asyncio.create_task(restarted.run())
    await until(lambda: len(seen) == 3, "the key's records after the restart")
    restarted.request_stop()
    await runner
    assert seen == [b"k1", b"k2", b"k3"]  # j1 was finished before: skipped by the offset map
    assert restarted.fatal is None


async def test_a_dead_follower_makes_the_worker_not_ready_until_it_runs_again(
    broker: InMemoryBroker, api: ScriptedApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state follower failing is reported by name, restarted, and recovers."""
    monkeypatch.setattr(supervision, "BACKOFF_BASE_SECONDS", 0.05)
    async with running(broker, api) as running_worker:
        health = running_worker.worker.health
        broker.poll_fault = lambda topic: (
            OSError("reader broke") if topic == "convoai.agent-state" else None
        )
        await until(lambda: "state-follower" in health.readiness().reason, "not ready, naming it")
        assert (
            running_worker.worker.metrics.background_task_restarts.labels(
                "state-follower"
            )._value.get()
            >= 1
        )
        broker.poll_fault = None
        await until(lambda: health.readiness().ok, "ready again")
        produce(broker, COMMANDS, speaks("f", 3, agents=3))
        await until(lambda: len(result_ids(broker)) == 3, "commands still run")
