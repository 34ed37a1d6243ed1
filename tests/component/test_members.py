"""Partitions moving between members, mid-command: nothing re-run, nothing lost, order kept."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from devtools.workload import speaks
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
from worker.kafka.memory import InMemoryBroker
from worker.kafka.ports import Committed
from worker.pipeline import offset_map

COMMANDS = "convoai.commands"
GROUP = "component"


async def test_a_new_owner_skips_what_the_previous_owner_finished(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """1,000 records finished above a hanging head are not run again by the next owner."""
    head = api.hold("head-0")
    produce(broker, COMMANDS, gets("head", 1), partition=1)
    produce(broker, COMMANDS, speaks("done", 1000, agents=1000), partition=1)
    async with running(broker, api) as first:
        await until(lambda: len(results(broker)) == 1000, "the 1,000 speaks finished")
        await wait_entered(api, "head-0")
        lag = ("convoai_consumer_lag_seconds", {"topic": COMMANDS, "partition": "1"})
        registry = first.worker.metrics.registry
        await until(lambda: registry.get_sample_value(*lag) is not None, "partition 1's lag")
        async with running(broker, api) as second:  # partition 1 moves to the new member
            committed = broker.committed(GROUP, COMMANDS, 1)
            assert committed is not None
            assert committed.offset == 0  # the head is not finished
            assert offset_map.decode(0, committed.metadata) == set(range(1, 1001))
            head.set()
            await until(lambda: result_ids(broker)["head-0"] == 1, "the head re-ran and finished")
            skipped_total = second.worker.metrics.records_skipped._value
            await until(lambda: skipped_total.get() >= 1000, "the finished records skipped")
            skipped = skipped_total.get()
            gave_up = first.worker.metrics.rebalances.labels("revoked")._value.get()
            kept = first.worker.health.readiness().details["assigned_partitions"]
            lag_after = registry.get_sample_value(*lag)
        del first
    assert skipped == 1000
    assert (gave_up, kept) == (1, 1)  # the first member gave partition 1 up and kept 0
    assert lag_after is None  # a revoked partition's series is removed, not left stale
    assert api.repeated() == {"head-0": 1}  # only the interrupted (idempotent) get ran again
    assert all(n == 1 for n in result_ids(broker).values())
    assert len(result_ids(broker)) == 1001


async def test_grace_expiry_finishes_a_speak_as_unknown_and_leaves_a_get(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """At the end of the revoke grace, an in-flight speak is `unknown`; a get is redelivered."""
    speak_gate = api.hold("s-0")
    get_gate = api.hold("g-0")
    produce(broker, COMMANDS, speaks("s", 1, agents=1), partition=1)
    produce(broker, COMMANDS, gets("g", 1), partition=1)
    async with running(broker, api):
        await wait_entered(api, "s-0")
        await wait_entered(api, "g-0")
        async with running(broker, api):
            await until(lambda: "s-0" in result_ids(broker), "the speak's result")
            by_id = {r.command_id: r for r in results(broker)}
            speak = by_id["s-0"]
            assert speak.outcome == "unknown"
            assert speak.error is not None
            assert speak.error.code == "ambiguous_interrupted"
            assert "g-0" not in by_id
            assert broker.committed(GROUP, COMMANDS, 1) == Committed(1, "")  # the get's offset
            get_gate.set()
            await until(lambda: "g-0" in result_ids(broker), "the get re-ran on the new owner")
        speak_gate.set()
    assert api.calls("s-0") == 1
    assert api.calls("g-0") == 2
    assert result_ids(broker) == {"s-0": 1, "g-0": 1}


async def test_shutdown_drops_queued_work_and_commits_what_finished(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """On stop, queued commands of a busy key are left for the next owner, in order."""
    gate = api.hold("q-0")
    queue = speaks("q", 5, agents=1)  # one agent: q-1..q-4 wait behind q-0
    produce(broker, COMMANDS, queue, partition=0)
    async with running(broker, api, drain_grace_seconds=5.0) as worker:
        await wait_entered(api, "q-0")
        worker.worker.request_stop()  # what SIGTERM does
        gate.set()  # q-0 finishes within the grace
        await worker.stop()
    assert result_ids(broker) == {"q-0": 1}
    assert broker.committed(GROUP, COMMANDS, 0) == Committed(1, "")
    async with running(broker, api):
        await until(lambda: len(result_ids(broker)) == 5, "the rest ran after a restart")
    spoken = [r.body for r in api.requests if r.operation == "agent.speak"]
    assert [b"q-0" in (b or b"") for b in spoken] == [True, False, False, False, False]
    assert [r.command_id for r in results(broker)] == [f"q-{i}" for i in range(5)]


async def test_a_crashed_members_work_reruns_at_most_its_in_flight_commands(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """After a crash, only commands that were in flight at the API run again.

    Both members run before the commands exist, and the crashed member never committed: the
    survivor knows what finished only by following the results topic.
    """
    held = [f"c-{i}" for i in range(5)]
    for marker in held:
        api.hold(marker)
    broker.commit_fault = lambda _: ConnectionError("commits are failing")
    async with running(broker, api, max_in_flight=10) as first, running(broker, api):
        produce(broker, COMMANDS, speaks("c", 200, agents=20), partition=0)  # the first's
        await until(lambda: len(results(broker)) == 200 - 5 * 10, "every key but the held ones")
        for marker in held:
            await wait_entered(api, marker)
        await first.crash()
        broker.commit_fault = None
        for marker in held:
            api.hold(marker).set()
        await until(lambda: len(result_ids(broker)) == 200, "every command has a result")
    assert api.repeated() == dict.fromkeys(held, 1)
    assert all(n == 1 for n in result_ids(broker).values())


def progressed(broker: InMemoryBroker, by: int) -> Callable[[], bool]:
    """A condition: `by` more results than now."""
    target = len(results(broker)) + by
    return lambda: len(results(broker)) >= target


@pytest.mark.parametrize("members", [2, 3])
async def test_scaling_up_and_down_repeats_no_call(broker: InMemoryBroker, members: int) -> None:
    """Members joining and leaving gracefully while commands flow: no call and no result twice."""
    api = ScriptedApi(latency=0.005)
    broker.create_topic("scaled.commands", 6)
    produce(broker, "scaled.commands", speaks("scale", 600, agents=60))
    scaled = {"topic_commands": "scaled.commands", "max_in_flight": 4}
    async with running(broker, api, **scaled):
        await until(lambda: len(results(broker)) > 50, "the first member is busy")
        for round_ in range(members):
            async with running(broker, api, **scaled):
                await until(progressed(broker, by=50), f"progress in round {round_}")
        await until(lambda: len(result_ids(broker)) == 600, "every command has a result")
    assert not api.repeated()
    assert all(n == 1 for n in result_ids(broker).values())
    assert {r.outcome for r in results(broker)} == {"succeeded"}
