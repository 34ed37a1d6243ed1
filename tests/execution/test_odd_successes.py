"""2xx answers the worker cannot read: the operation ran, so the command is not failed or
repeated; an agent.start without an agent id is found by its name, or honestly `unknown`."""

from __future__ import annotations

from typing import Any

from tests.emulator.harness import APP_ID, call_body, start_body
from tests.execution.conftest import Env
from worker.emulator.faults import FaultRule, FaultSettings
from worker.emulator.rules import Rules


def inject(env: Env, operation: str, body: str = "") -> None:
    """`operation` is performed and answered with `body` as text, once."""
    rule = FaultRule(action="garble", operation=operation, body=body, count=1)
    env.emulator.faults.replace(FaultSettings(rules=[rule]))


def start(name: str = "bot") -> dict[str, Any]:
    return {"command": "agent.start", "id": f"start-{name}", **start_body(name)}


async def test_a_speak_answered_with_text_succeeds_once_with_the_text(env: Env) -> None:
    """The speak ran: `succeeded` with the body as text, sent once, the warning counted."""
    agent_id = (await env.run(start())).result.agent_id
    inject(env, "agent.speak", "<html>ok</html>")
    speak = {"command": "agent.speak", "id": "s", "agent_id": agent_id, "text": "Hi"}
    result = (await env.run(speak)).result
    assert (result.outcome, result.data, result.attempts) == ("succeeded", "<html>ok</html>", 1)
    assert len(env.emulator.requests("agent.speak")) == 1
    assert env.observer.unreadable == ["agent.speak"]


async def test_a_call_answered_with_text_succeeds_and_is_dialled_once(env: Env) -> None:
    """call.start with a body that is not JSON: placed, so `succeeded`, never dialled again."""
    inject(env, "call.start", "accepted")
    command = {"command": "call.start", "id": "c", **call_body()}
    result = (await env.run(command)).result
    assert (result.outcome, result.data) == ("succeeded", "accepted")
    assert len(env.emulator.requests("call.start")) == 1
    assert env.observer.unreadable == ["call.start"]


async def test_an_empty_start_is_reconciled_to_the_agent_called_by_its_name(env: Env) -> None:
    """An empty 2xx on agent.start: the agent of that name in the channel is reported as the
    one started (`reconciled`), with its state event; the join is not sent again."""
    inject(env, "agent.start")
    execution = await env.run(start())
    result = execution.result
    assert (result.outcome, result.reconciled) == ("succeeded", True), result.error
    assert result.agent_id is not None
    assert env.emulator.state.get_agent(APP_ID, result.agent_id)["name"] == "bot"
    assert env.emulator.state.agent_count() == 1
    assert len(env.emulator.requests("agent.start")) == 1
    assert [(e.agent_id, e.name) for e in execution.state_events] == [(result.agent_id, "bot")]
    assert env.names.resolve(APP_ID, "bot") == result.agent_id


async def test_an_empty_start_without_names_in_get_is_unknown(env: Env) -> None:
    """When agent.get gives no names, the agent cannot be found: `unknown`, saying it may be
    running, not `failed` (which would invite a second start)."""
    env.emulator.state.rules = Rules(name_in_get=False)
    inject(env, "agent.start")
    result = (await env.run(start())).result
    assert result.outcome == "unknown"
    assert result.error is not None
    assert result.error.code == "ambiguous_no_agent_id"
    assert "may be running" in result.error.message
