"""The two rules the delivery guarantees rest on, checked at the moment they matter.

- Nothing is committed while a result is unacknowledged: at every commit, each record below the
  committed position (and in its offset map) has its result on Kafka.
- No result is on Kafka while its state events or dead letter are not: in the broker's order of
  appends, a command's result comes after them, also when Kafka acknowledges them slowly.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from devtools.workload import agent_properties, speaks
from tests.component.harness import ScriptedApi, produce, result_ids, results, running, until
from worker.api.errors import ApiStatusError
from worker.kafka.memory import InMemoryBroker, MemoryCommandSource
from worker.kafka.ports import Committed
from worker.pipeline import offset_map

COMMANDS, RESULTS = "convoai.commands", "convoai.results"
STATE, DLQ = "convoai.agent-state", "convoai.commands.dlq"


async def test_nothing_is_committed_before_its_result_is_acknowledged(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """Results acknowledged half a second late: every commit covers only records whose result
    is already on Kafka."""
    premature: list[str] = []
    commits = 0

    def check(_: MemoryCommandSource, offsets: Mapping[int, Committed]) -> None:
        nonlocal commits
        commits += 1
        done = set(result_ids(broker))
        for partition, committed in offsets.items():
            above = offset_map.decode(committed.offset, committed.metadata)
            for record in broker.partition_log(COMMANDS, partition):
                if record.offset < committed.offset or record.offset in above:
                    command_id = msgspec.json.decode(record.value or b"{}")["id"]
                    if command_id not in done:
                        premature.append(f"{partition}:{record.offset} ({command_id})")

    broker.on_commit = check
    broker.send_latency = lambda topic: 0.5 if topic == RESULTS else 0.0
    produce(broker, COMMANDS, speaks("c", 40, agents=8))
    async with running(broker, api):
        await until(lambda: len(result_ids(broker)) == 40, "every result")
        await until(lambda: commits >= 2, "commits")
    assert premature == []


async def test_a_result_follows_its_state_events_and_its_dead_letter(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """A start publishes its agent's state, a get that runs out of retries its dead letter;
    both acknowledged slowly, both on Kafka before the command's result."""
    api.failures["g-0"] = [ApiStatusError("agent.get", 503) for _ in range(5)]
    broker.send_latency = lambda topic: 0.3 if topic in (STATE, DLQ) else 0.0
    produce(
        broker,
        COMMANDS,
        [
            {
                "command": "agent.start",
                "id": "s-0",
                "name": "n-0",
                "properties": agent_properties("n-0"),
            },
            {"command": "agent.get", "id": "g-0", "agent_id": "g-0"},
        ],
    )
    async with running(broker, api):
        await until(lambda: len(result_ids(broker)) == 2, "both results")
    at = {
        r.command_id: seq
        for r, seq in zip(results(broker), sequences(broker, RESULTS), strict=True)
    }
    (letter,) = broker.records(DLQ)
    states = broker.records(STATE)
    assert states
    assert max(state.sequence for state in states) < at["s-0"]
    assert letter.sequence < at["g-0"]
    assert {r.command_id: r.outcome for r in results(broker)} == {
        "s-0": "succeeded",
        "g-0": "failed",
    }


def sequences(broker: InMemoryBroker, topic: str) -> list[int]:
    """The append order of `topic`'s records, in the order `records` lists them."""
    return [record.sequence for record in broker.records(topic) if record.value]
