"""Log lines about a command name it: `command_id`, `command`, `partition` and `offset`."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from tests.component.harness import ScriptedApi, produce, result_ids, running, until
from worker.api.errors import ApiStatusError
from worker.kafka.memory import InMemoryBroker

COMMANDS = "convoai.commands"


def lines(captured: list[Any], event: str, command_id: str) -> list[dict[str, Any]]:
    return [
        line for line in captured if line["event"] == event and line.get("command_id") == command_id
    ]


async def test_a_failed_and_a_rejected_command_are_logged_with_their_context(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """The line of each command that did not succeed says which command and record it was."""
    api.failures["F"] = [ApiStatusError("agent.get", 400, body={"reason": "Bad"})]
    fails = {"command": "agent.get", "id": "fails", "agent_id": "F"}
    produce(broker, COMMANDS, [fails], partition=1)
    broker.produce(COMMANDS, b'{"command":"agent.get","id":"bad"}', key=b"k", partition=1)
    with capture_logs() as captured:
        async with running(broker, api):
            await until(lambda: len(result_ids(broker)) == 2, "two results")
    [failed] = lines(captured, "command_processed", "fails")
    assert {key: failed[key] for key in ("command_id", "command", "partition", "offset")} == {
        "command_id": "fails",
        "command": "agent.get",
        "partition": 1,
        "offset": 0,
    }
    assert (failed["outcome"], failed["error"], failed["log_level"]) == (
        "failed",
        "invalid_request",
        "info",
    )
    [rejected] = lines(captured, "command_rejected", "bad")
    assert {key: rejected[key] for key in ("command_id", "command", "partition", "offset")} == {
        "command_id": "bad",
        "command": "agent.get",
        "partition": 1,
        "offset": 1,
    }
    assert (rejected["reason"], rejected["log_level"]) == ("invalid_command", "warning")
