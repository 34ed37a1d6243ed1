"""The advertised metrics move with what the worker does (retries, in flight, back-pressure,
lag, expiry), read from the worker's own registry on the in-memory broker."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.component.harness import (
    ScriptedApi,
    gets,
    produce,
    result_ids,
    results,
    running,
    until,
    wait_entered,
)
from worker.api.errors import ApiStatusError, ApiTimeoutError
from worker.kafka import memory
from worker.kafka.memory import InMemoryBroker
from worker.metrics import Metrics

COMMANDS = "convoai.commands"


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    """One sample of the worker's registry (0 when it was never set)."""
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_retries_are_counted_by_operation_and_reason(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """Each attempt the worker will send again counts once under its operation and reason."""
    api.failures["r-0"] = [ApiStatusError("agent.get", 503), ApiTimeoutError("agent.get", "slow")]
    api.failures["r-1"] = [ApiStatusError("agent.get", 429)]
    async with running(broker, api) as worker:
        produce(broker, COMMANDS, gets("r", 2))
        await until(lambda: len(result_ids(broker)) == 2, "two results")
        metrics = worker.worker.metrics
    assert {r.command_id: (r.outcome, r.attempts) for r in results(broker)} == {
        "r-0": ("succeeded", 3),
        "r-1": ("succeeded", 2),
    }
    retries = "convoai_api_retries_total"
    assert sample(metrics, retries, operation="agent.get", reason="server_error") == 1
    assert sample(metrics, retries, operation="agent.get", reason="timeout") == 1
    assert sample(metrics, retries, operation="agent.get", reason="rate_limited") == 1


async def test_the_in_flight_gauge_counts_commands_at_the_api(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """Commands waiting for the API are in flight; none once they finished; the limit is shown."""
    gates = [api.hold(f"f-{i}") for i in range(3)]
    async with running(broker, api, max_in_flight=7) as worker:
        metrics = worker.worker.metrics
        produce(broker, COMMANDS, gets("f", 3))
        for i in range(3):
            await wait_entered(api, f"f-{i}")
        assert sample(metrics, "convoai_commands_in_flight") == 3
        assert sample(metrics, "convoai_commands_in_flight_limit") == 7
        for gate in gates:
            gate.set()
        await until(lambda: len(result_ids(broker)) == 3, "three results")
        assert sample(metrics, "convoai_commands_in_flight") == 0


async def test_a_full_partition_is_paused_until_it_drains_and_paused_again_when_full(
    broker: InMemoryBroker, api: ScriptedApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`convoai_partition_paused` is 1 while the partition's buffer is full and no more of it
    is fetched; it resumes once drained, and pauses again the next time it fills."""
    monkeypatch.setattr(memory, "MAX_POLL_RECORDS", 5)  # a pause must hold records back
    paused = {"topic": COMMANDS, "partition": "0"}

    def speaks(agent: str) -> list[dict[str, str]]:
        return [
            {
                "command": "agent.speak",
                "id": f"{agent}-{i}",
                "agent_id": agent,
                "text": f"{agent}-{i}",
            }
            for i in range(30)
        ]

    async with running(broker, api, partition_buffer=10) as worker:
        metrics = worker.worker.metrics
        for round_, agent in enumerate(("p-0", "p-1"), start=1):
            gate = api.hold(f"{agent}-0")
            produce(broker, COMMANDS, speaks(agent), partition=0)
            await wait_entered(api, f"{agent}-0")
            await until(
                lambda: sample(metrics, "convoai_partition_paused", **paused) == 1, "paused"
            )
            assert len(api.requests) == round_ * 30 - 29  # the rest waits behind the first
            gate.set()

            def all_done(count: int = round_ * 30) -> bool:
                return len(result_ids(broker)) == count

            await until(all_done, "every result")
            assert sample(metrics, "convoai_partition_paused", **paused) == 0


async def test_lag_in_seconds_is_the_age_of_the_oldest_unfinished_record(
    api: ScriptedApi,
) -> None:
    """A record produced a minute ago and still running shows a lag of at least a minute; none
    once it is finished and committed."""
    broker = InMemoryBroker(clock=lambda: time.time() - 60)  # records are stamped a minute ago
    broker.create_topic(COMMANDS, 1)
    for topic in ("convoai.results", "convoai.agent-state", "convoai.commands.dlq"):
        broker.create_topic(topic, 1)
    gate = api.hold("old-0")
    async with running(broker, api) as worker:
        metrics = worker.worker.metrics
        lag = {"topic": COMMANDS, "partition": "0"}
        produce(broker, COMMANDS, gets("old", 1))
        await wait_entered(api, "old-0")
        await until(
            lambda: sample(metrics, "convoai_consumer_lag_seconds", **lag) >= 60, "a minute of lag"
        )
        assert sample(metrics, "convoai_consumer_lag_seconds", **lag) < 120
        gate.set()
        await until(
            lambda: sample(metrics, "convoai_consumer_lag_seconds", **lag) == 0, "no lag left"
        )
        assert sample(metrics, "convoai_consumer_lag_records", **lag) == 0


async def test_expired_commands_are_counted_and_never_sent(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """A command past `expires_at` counts in `convoai_commands_expired_total` and no request
    is sent; a command still in time is not counted."""
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    late, timely = gets("late", 1)[0], gets("timely", 1)[0]
    async with running(broker, api) as worker:
        produce(broker, COMMANDS, [{**late, "expires_at": past}, {**timely, "expires_at": future}])
        await until(lambda: len(result_ids(broker)) == 2, "two results")
        metrics = worker.worker.metrics
    outcomes = {r.command_id: r.outcome for r in results(broker)}
    assert outcomes == {"late-0": "expired", "timely-0": "succeeded"}
    assert sample(metrics, "convoai_commands_expired_total", command="agent.get") == 1
    assert (api.calls("late-0"), api.calls("timely-0")) == (0, 1)
