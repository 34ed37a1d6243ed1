"""A dead letter replayed with a marker runs once more, and only once, in the whole group."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from contracts.headers import CE_ID, REPLAY
from tests.component.harness import ScriptedApi, result_ids, running, until
from worker.kafka.memory import InMemoryBroker

COMMANDS = "convoai.commands"
RESULTS = "convoai.results"
SPEAK = {"command": "agent.speak", "id": "r-1", "agent_id": "A1", "text": "r-1"}
MARKER = "convoai.commands.dlq:0:5"


def send(broker: InMemoryBroker, replay: str | None = None) -> None:
    headers = [] if replay is None else [(REPLAY, replay.encode())]
    broker.produce(COMMANDS, msgspec.json.encode(SPEAK), key=b"A1", headers=headers, partition=0)


def handled(broker: InMemoryBroker, records: int) -> Callable[[], bool]:
    """Whether the group committed past the first `records` records of partition 0."""

    def check() -> bool:
        committed = broker.committed("component", COMMANDS, 0)
        return committed is not None and committed.offset >= records

    return check


def result_headers(broker: InMemoryBroker) -> list[dict[str, bytes]]:
    return [dict(record.headers) for record in broker.records(RESULTS)]


async def test_a_replay_runs_once_although_the_id_is_done(broker: InMemoryBroker) -> None:
    api = ScriptedApi()
    async with running(broker, api):
        send(broker)
        await until(lambda: result_ids(broker)["r-1"] == 1, "first result")
        send(broker)  # a plain redelivery: skipped
        send(broker, MARKER)  # the replay: runs
        send(broker, MARKER)  # the replay redelivered: skipped
        await until(lambda: result_ids(broker)["r-1"] == 2, "the replay's result")
        await until(handled(broker, 4), "all records handled")
    assert api.calls("r-1") == 2
    first, replayed = result_headers(broker)
    assert REPLAY not in first
    assert replayed[REPLAY] == MARKER.encode()
    assert replayed[CE_ID] == f"r-1@{MARKER}".encode()  # a CloudEvent of its own


async def test_a_member_started_later_knows_the_replay_is_done(broker: InMemoryBroker) -> None:
    """The marker travels on the result, so memory rebuilt from the results topic has it."""
    api = ScriptedApi()
    async with running(broker, api):
        send(broker, MARKER)
        await until(lambda: result_ids(broker)["r-1"] == 1, "the replay's result")
    async with running(broker, api):
        send(broker, MARKER)
        send(broker, "convoai.commands.dlq:1:9")  # another dead letter of the same command
        await until(lambda: result_ids(broker)["r-1"] == 2, "the other replay's result")
        await until(handled(broker, 3), "all records handled")
    assert api.calls("r-1") == 2
