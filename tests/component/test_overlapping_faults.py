"""Faults that overlap: a rebalance during the drain, a signal during a revoke, Kafka slow while
revoking, a forced exit in any phase; and assignments that cannot be opened at once.

Each test holds commands at the API (a gate) so that the faults meet work in flight, and judges
by what reached the API and what reached Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib

from devtools.workload import speaks
from tests.component.harness import (
    ScriptedApi,
    produce,
    result_ids,
    results,
    running,
    settings,
    until,
    wait_entered,
)
from worker.deadlines import derive
from worker.errors import FatalError
from worker.kafka.memory import InMemoryBroker

COMMANDS = "convoai.commands"
HELD = [f"h-{i}" for i in range(6)]


def hold_all(api: ScriptedApi) -> list[asyncio.Event]:
    """Gates for the `HELD` speaks, which are produced over both partitions."""
    return [api.hold(marker) for marker in HELD]


async def entered(api: ScriptedApi) -> None:
    for marker in HELD:
        await wait_entered(api, marker)


def open_all(gates: list[asyncio.Event]) -> None:
    for gate in gates:
        gate.set()


async def test_a_rebalance_during_the_drain_waits_for_the_drain(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """A member joins while another drains (a rolling deploy): the drainer's revoke joins its
    drain instead of returning at once, so the newcomer gets the partitions only after the
    held speaks finished; none reaches the API twice, none has two results."""
    gates = hold_all(api)
    produce(broker, COMMANDS, speaks("h", len(HELD), agents=len(HELD)))
    async with running(broker, api, drain_grace_seconds=30.0) as first:
        await entered(api)
        first.worker.request_stop()  # SIGTERM
        second = running(broker, api)
        joining = asyncio.create_task(second.__aenter__())
        await until(lambda: broker.rebalances("component") >= 2, "the newcomer's rebalance")
        await asyncio.sleep(0.3)
        assert not joining.done(), "the newcomer was given partitions still being drained"
        open_all(gates)
        await joining
        await asyncio.wait_for(first.task, 10)
        await second.__aexit__(None, None, None)
    assert not api.repeated()
    assert result_ids(broker) == dict.fromkeys(HELD, 1)
    assert {r.outcome for r in results(broker)} == {"succeeded"}


async def test_a_signal_during_a_revoke_joins_it(broker: InMemoryBroker, api: ScriptedApi) -> None:
    """SIGTERM while a revoke's grace runs: the shutdown waits for that revoke (no early exit
    that would cancel its work unmarked); at the end of the grace the held speaks get their
    `unknown` result, and nobody sends them again."""
    hold_all(api)
    produce(broker, COMMANDS, speaks("h", len(HELD), agents=len(HELD)))
    async with running(broker, api, drain_grace_seconds=30.0) as first:
        await entered(api)
        second = running(broker, api)
        joining = asyncio.create_task(second.__aenter__())
        await until(lambda: broker.rebalances("component") >= 2, "the rebalance")
        await asyncio.sleep(0.2)  # the revoke's grace (2 s) runs
        first.worker.request_stop()
        await asyncio.wait_for(first.task, 10)
        await joining
        await until(lambda: len(result_ids(broker)) == len(HELD), "a result for each")
        await second.__aexit__(None, None, None)
    assert not api.repeated()
    assert result_ids(broker) == dict.fromkeys(HELD, 1)
    assert {r.outcome for r in results(broker)} == {"unknown"}


async def test_kafka_slow_while_revoking_within_the_interrupt_wait_repeats_nothing(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """The `unknown` results of interrupted speaks take a while to be acknowledged, less than
    the interrupt wait: they are published and committed, so nothing runs twice."""
    hold_all(api)
    produce(broker, COMMANDS, speaks("h", len(HELD), agents=len(HELD)))
    async with running(broker, api) as first:
        await entered(api)
        broker.send_latency = lambda _: 0.6  # the interrupt wait is 1 s here
        async with running(broker, api):
            await until(lambda: len(result_ids(broker)) == len(HELD), "a result for each")
            broker.send_latency = None
        del first
    assert not api.repeated()
    assert result_ids(broker) == dict.fromkeys(HELD, 1)


async def test_kafka_slower_than_the_interrupt_wait_ends_the_revoke_in_time(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """Kafka slower than the interrupt wait: the revoke still ends within its deadlines (the
    publishing work is killed, it cannot park), the newcomer takes over, and what it runs
    again is bounded by what was killed."""
    config = settings()
    bound = derive(
        config.kafka_rebalance_timeout_seconds,
        config.kafka_heartbeat_interval_seconds,
        config.drain_grace_seconds,
    ).release_bound
    hold_all(api)
    produce(broker, COMMANDS, speaks("h", len(HELD), agents=len(HELD)))
    async with running(broker, api) as first:
        await entered(api)
        broker.send_latency = lambda _: 4.0
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with running(broker, api):
            took = loop.time() - started
            broker.send_latency = None
            for marker in HELD:
                api.hold(marker).set()
            await until(lambda: len(result_ids(broker)) == len(HELD), "a result for each")
        killed = first.worker.metrics.commands_interrupted.labels("killed")._value.get()
    assert took < bound + 1.0, f"the revoke took {took:.1f} s (bound {bound:.1f} s)"
    assert killed == len(HELD)
    assert sum(api.repeated().values()) <= killed


async def test_a_second_signal_during_a_revoke_exits_at_once(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """A forced exit while a revoke waits for held work: the worker task ends promptly and
    publishes nothing more for the killed work."""
    hold_all(api)
    produce(broker, COMMANDS, speaks("h", len(HELD), agents=len(HELD)))
    async with running(broker, api, drain_grace_seconds=30.0) as first:
        await entered(api)
        second = running(broker, api)
        joining = asyncio.create_task(second.__aenter__())
        await until(lambda: broker.rebalances("component") >= 2, "the rebalance")
        first.worker.request_stop()
        first.task.cancel()  # the second signal
        done, _ = await asyncio.wait([first.task], timeout=2)
        assert done, f"still running in phase {first.worker.phase}"
        for marker in HELD:
            api.hold(marker).set()
        await joining
        await until(lambda: len(result_ids(broker)) == len(HELD), "the newcomer ran them")
        await second.__aexit__(None, None, None)
    assert {r.outcome for r in results(broker)} == {"succeeded"}  # no `unknown` from the first
    assert result_ids(broker) == dict.fromkeys(HELD, 1)


async def test_a_committed_offset_lookup_that_fails_at_first_is_retried(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """The lookup of committed positions fails twice at assignment: the partitions stay held
    meanwhile, then open and run their records; nothing is dropped."""
    failures = [ConnectionError("coordinator moving"), TimeoutError("slow")]
    broker.lookup_fault = lambda _: failures.pop(0) if failures else None
    produce(broker, COMMANDS, speaks("l", 40, agents=10))
    async with running(broker, api) as worker:
        await until(lambda: len(result_ids(broker)) == 40, "every command ran")
        retried = worker.worker.metrics.partition_opens.labels("retried")._value.get()
    assert retried == 2
    assert failures == []


async def test_a_partition_that_cannot_be_opened_makes_the_member_leave(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """Lookups that keep failing: the member does not sit on partitions it cannot serve; it
    stops with a fatal error naming them (and leaves the group)."""
    broker.lookup_fault = lambda _: ConnectionError("coordinator unavailable")
    config = settings(partition_open_timeout_seconds=2.0)
    backend = broker.backend(config)
    from prometheus_client import CollectorRegistry  # noqa: PLC0415 - this test only

    from worker.app import Worker  # noqa: PLC0415 - this test only
    from worker.metrics import Metrics  # noqa: PLC0415 - this test only

    worker = Worker(config, Metrics(CollectorRegistry()), kafka=backend, api=lambda *_: api)
    task = asyncio.create_task(worker.run())
    done, _ = await asyncio.wait([task], timeout=15)
    assert done, "the member kept partitions it could not open"
    error = task.exception()
    assert isinstance(error, FatalError)
    assert "could not be opened" in str(error)
    assert broker.group_size("component") == 0
    assert worker.metrics.partition_opens.labels("failed")._value.get() == 2


async def test_a_member_waits_for_its_dedupe_memory_before_running_commands(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """Commands one member finished but never committed (commits fail): only the results topic
    knows they ran, and the other member loaded its memory before they did. When the first
    crashes, the survivor holds the partition it takes over while the results topic cannot be
    read, and runs nothing; once readable, it skips what the first member did."""
    broker.commit_fault = lambda _: ConnectionError("commits are failing")
    async with running(broker, api) as one, running(broker, api) as two:
        await until(lambda: broker.rebalances("component") >= 2, "both members")
        await broker.settled("component")
        owner = one if 0 in one.backend.sources[0].owned else two
        produce(broker, COMMANDS, speaks("d", 20, agents=20), partition=0)
        await until(lambda: len(result_ids(broker)) == 20, "the owner ran them")
        calls = len(api.requests)
        broker.poll_fault = lambda topic: (
            ConnectionError("results unreadable") if topic == "convoai.results" else None
        )
        await owner.crash()
        await asyncio.sleep(1.5)
        assert len(api.requests) == calls  # the survivor runs nothing blind
        broker.poll_fault = None
        await asyncio.sleep(1.5)
    assert broker.committed("component", COMMANDS, 0) is None  # nothing was ever committed
    assert not api.repeated()
    assert all(n == 1 for n in result_ids(broker).values())


async def test_a_record_dated_in_the_year_10000_gets_its_result(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """A timestamp out of datetime's range stops nothing: the command runs, its result is
    published, and the next record of the key runs too."""
    far, after = speaks("y", 2, agents=1)
    key = far["agent_id"].encode()
    import msgspec  # noqa: PLC0415 - this test only

    broker.produce(COMMANDS, msgspec.json.encode(far), key=key, timestamp=253_402_300_800_000)
    broker.produce(COMMANDS, msgspec.json.encode(after), key=key, timestamp=-1)
    async with running(broker, api):
        await until(lambda: len(result_ids(broker)) == 2, "both results")
    assert {r.outcome for r in results(broker)} == {"succeeded"}


async def test_a_bug_while_processing_one_record_is_contained_to_it(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """An unexpected exception for one command: a failed result with `internal_error`, a dead
    letter naming the exception, a count; the next command of the same key runs."""
    first, second = speaks("b", 2, agents=1)
    api.failures[first["text"]] = [ZeroDivisionError("a bug")]
    produce(broker, COMMANDS, [first, second])
    async with running(broker, api) as worker:
        await until(lambda: len(result_ids(broker)) == 2, "both results")
        counted = worker.worker.metrics.internal_error("agent.speak")._value.get()
    by_id = {r.command_id: r for r in results(broker)}
    assert by_id["b-0"].outcome == "failed"
    assert by_id["b-0"].error is not None
    assert by_id["b-0"].error.code == "internal_error"
    assert "ZeroDivisionError" in by_id["b-0"].error.message
    assert by_id["b-1"].outcome == "succeeded"
    (letter,) = broker.records("convoai.commands.dlq")
    headers = dict(letter.headers)
    assert headers["__connect.errors.exception.class.name"] == b"ZeroDivisionError"
    assert headers["__connect.errors.exception.message"] == b"a bug"
    assert counted == 1


async def test_buffered_bytes_stay_within_the_budget(broker: InMemoryBroker) -> None:
    """Large commands and a slow API: the partitions pause at the byte budget, so no more than
    the budget plus one poll (a quarter of it) is ever buffered, and every command still runs."""
    api = ScriptedApi(latency=0.01)
    budget = 1_048_576
    big = [dict(c, padding="x" * 50_000) for c in speaks("m", 200, agents=200)]
    produce(broker, COMMANDS, big)
    peak = 0
    async with running(broker, api, buffer_max_bytes=budget, max_in_flight=4) as worker:
        consumer = worker.worker.consumer
        assert consumer is not None
        while len(result_ids(broker)) < 200:
            peak = max(peak, consumer.buffered_bytes)
            await asyncio.sleep(0.005)
    assert peak > budget // 2  # the budget was what held it back
    assert peak <= budget + budget // 4 + 60_000  # one poll, whose first record comes whole


async def test_no_member_hangs_when_everything_overlaps(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """A rebalance during a drain, with Kafka slow and a forced exit on top: every member's task
    ends, and each command has one result."""
    hold_all(api)
    produce(broker, COMMANDS, speaks("h", len(HELD), agents=len(HELD)))
    async with running(broker, api, drain_grace_seconds=1.0) as first:
        await entered(api)
        first.worker.request_stop()
        broker.send_latency = lambda _: 1.5
        second = running(broker, api)
        joining = asyncio.create_task(second.__aenter__())
        await asyncio.sleep(1.2)
        first.task.cancel()
        done, _ = await asyncio.wait([first.task], timeout=12)
        assert done
        broker.send_latency = None
        for marker in HELD:
            api.hold(marker).set()
        await joining
        await until(lambda: len(result_ids(broker)) == len(HELD), "a result for each")
        with contextlib.suppress(Exception):
            await second.__aexit__(None, None, None)
    assert all(n == 1 for n in result_ids(broker).values())
