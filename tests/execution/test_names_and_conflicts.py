"""Starts that meet a taken name, lookups by name, and what the executor reports about the
agents it meets, against the emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from tests.emulator.harness import APP_ID, call_body, start_body
from tests.execution.conftest import Env, issued_later, number_add
from worker.agents.directory import MAX_SESSION_SECONDS, AgentDirectory
from worker.emulator.faults import FaultRule, FaultSettings
from worker.emulator.rules import Rules
from worker.emulator.state import DEFAULT_STOP_DELAY
from worker.execution.lookup import MAX_GETS

BASE = 0.2  # api_backoff_base_seconds: with jitter 1.0 the n-th backoff is BASE * 2**(n-1)
LOOKUP = ["agent.list"] * 4  # one list query per status that holds a name


def start(name: str = "bot", **extra: Any) -> dict[str, Any]:
    return {"command": "agent.start", "id": f"start-{name}", **start_body(name), **extra}


def taken(count: int | None = None) -> FaultRule:
    """agent.start answered 409 TaskConflict (`count` times, or always)."""
    return FaultRule(operation="agent.start", status=409, reason="TaskConflict", count=count)


def inject(env: Env, *rules: FaultRule) -> None:
    env.emulator.faults.replace(FaultSettings(rules=list(rules)))


def operations(env: Env) -> list[str]:
    return [entry.operation for entry in env.emulator.log.entries()]


async def stopped_agent(env: Env) -> str:
    """An agent called "bot" that this worker started and that has stopped since; the
    request log and the recorded backoffs start empty after it."""
    assert env.clock is not None
    agent_id = (await env.run(start())).result.agent_id
    assert agent_id is not None
    await env.run({"command": "agent.stop", "id": "stop", "name": "bot"})
    env.clock.advance(DEFAULT_STOP_DELAY + 1)
    env.emulator.log.clear()
    env.sleeps.delays.clear()
    return agent_id


async def test_a_name_still_taken_after_its_agent_ended_is_joined_again_after_a_backoff(
    clocked_env: Env,
) -> None:
    """The API has not caught up with a stop: each repeated join waits a growing backoff, and
    the old agent is reported STOPPED under its name before the new one."""
    env = clocked_env
    await env.configure(jitter=lambda: 1.0)
    old = await stopped_agent(env)
    inject(env, taken(count=3))
    execution = await env.run(start() | {"id": "restart"})
    result = execution.result
    assert result.outcome == "succeeded", result.error
    assert result.agent_id not in (None, old)
    assert operations(env) == [
        "agent.start",
        "agent.get",  # the directory's agent: has it ended?
        "agent.start",
        *LOOKUP,  # none holds the name: the directory's ended agent it is
        "agent.start",
        *LOOKUP,
        "agent.start",
    ]
    assert env.sleeps.delays == [BASE, BASE * 2]
    assert [(e.agent_id, e.name, e.status) for e in execution.state_events] == [
        (old, "bot", "STOPPED"),
        (result.agent_id, "bot", "STARTING"),
    ]


async def test_a_holder_the_api_no_longer_knows_has_ended_and_the_name_is_joined_again(
    clocked_env: Env,
) -> None:
    """The holder's get answers 404: the agent has exited, so it is reported STOPPED under its
    name, and the start joins again at once."""
    env = clocked_env
    old = await stopped_agent(env)
    gone = FaultRule(operation="agent.get", status=404, reason="TaskNotFound", count=1)
    inject(env, taken(count=1), gone)
    execution = await env.run(start() | {"id": "restart"})
    result = execution.result
    assert result.outcome == "succeeded", result.error
    assert result.agent_id not in (None, old)
    assert operations(env) == ["agent.start", "agent.get", "agent.start"]
    assert env.sleeps.delays == []
    assert [(e.agent_id, e.name, e.status) for e in execution.state_events] == [
        (old, "bot", "STOPPED"),
        (result.agent_id, "bot", "STARTING"),
    ]


async def test_a_name_never_reusable_fails_at_once_and_not_retryable(clocked_env: Env) -> None:
    """Under the emulator's never-reusable rule, a restart after the agent stopped gets two
    joins after short backoffs (0.6 s in all), then fails `name_not_reusable`, not retryable,
    with the reason, instead of polling for its whole budget."""
    env = clocked_env
    env.emulator.state.rules = Rules(name_reuse="never")
    await env.configure(jitter=lambda: 1.0)
    old = await stopped_agent(env)
    result = (await env.run(start() | {"id": "restart"})).result
    assert result.error is not None
    assert (result.outcome, result.error.code, result.error.http_status) == (
        "failed",
        "name_not_reusable",
        409,
    )
    assert result.error.retryable is False
    assert result.error.message == (
        "agent.start: HTTP 409 TaskConflict agent bot already exists; "
        f"agent {old} that held the name 'bot' has ended (STOPPED), yet the name is still "
        "refused after 2 more joins: the API does not reuse names ('cannot be used "
        "repeatedly'); start with a new name"
    )
    assert result.error.details == {"detail": "agent bot already exists", "reason": "TaskConflict"}
    assert operations(env).count("agent.start") == 4
    assert env.sleeps.delays == [BASE, BASE * 2]


async def test_a_name_still_taken_when_the_budget_allows_no_more_backoff_is_still_held(
    clocked_env: Env,
) -> None:
    """The holder has ended but the API keeps refusing the name, and the command's budget
    cannot wait out the next backoff: failed `name_still_held`, retryable, naming the ended
    holder."""
    env = clocked_env
    await env.configure(jitter=lambda: 1.0, command_timeout_seconds=0.5)
    old = await stopped_agent(env)
    inject(env, taken())
    result = (await env.run(start() | {"id": "restart"})).result
    assert result.error is not None
    assert (result.outcome, result.error.code, result.error.retryable) == (
        "failed",
        "name_still_held",
        True,
    )
    assert result.error.message == (
        f"agent.start: HTTP 409 TaskConflict injected fault; agent {old} (STOPPED) "
        "still holds the name 'bot'; the command's budget ran out"
    )
    assert env.sleeps.delays == [BASE]


async def test_a_join_refused_for_another_reason_fails_with_that_refusal(
    clocked_env: Env,
) -> None:
    """After the conflict, a join answered 400 ends the command with the 400, not the 409."""
    env = clocked_env
    await stopped_agent(env)
    refused = FaultRule(operation="agent.start", status=400, reason="InvalidParams", count=1)
    inject(env, taken(count=1), refused)
    result = (await env.run(start() | {"id": "restart"})).result
    assert result.error is not None
    assert (result.outcome, result.error.http_status, result.error.reason) == (
        "failed",
        400,
        "InvalidParams",
    )


async def test_the_holder_of_a_name_is_looked_for_in_the_starts_channel(env: Env) -> None:
    """An agent called "bot" in another channel is not the agent this start asked for."""
    await env.run(start(properties={**start_body("bot")["properties"], "channel": "room-1"}))
    env.names = AgentDirectory()
    await env.configure()
    other = start_body("bot", channel="room-2")
    result = (await env.run({"command": "agent.start", "id": "s2", **other})).result
    assert result.error is not None
    assert (result.outcome, result.error.code) == ("failed", "conflict_unresolved")
    assert "no agent called 'bot' was found holding the name" in result.error.message
    queries = [dict(parse_qsl(e.query)) for e in env.emulator.log.entries("agent.list")]
    assert {query["channel"] for query in queries} == {"room-2"}


async def test_a_name_lookup_reads_live_agents_of_the_last_sessions(clocked_env: Env) -> None:
    """The list queries: one state each (running, then starting), agents since the longest
    session could have started, a full page; no channel."""
    env = clocked_env
    assert env.clock is not None
    agent_id = (await env.run(start())).result.agent_id
    env.names = AgentDirectory()
    await env.configure()
    result = await env.run({"command": "agent.speak", "id": "s", "name": "bot", "text": "hi"})
    assert result.result.agent_id == agent_id
    queries = [dict(parse_qsl(e.query)) for e in env.emulator.log.entries("agent.list")]
    assert queries == [
        {"from_time": str(int(env.clock()) - MAX_SESSION_SECONDS), "state": state, "limit": "50"}
        for state in ("2", "1")
    ]


async def test_an_agent_found_by_name_is_reported_but_not_adopted(env: Env) -> None:
    """A lookup through the API reports the agent under its name; this worker did not start
    it, so its reconciler leaves it alone."""
    agent_id = (await env.run(start())).result.agent_id
    env.names = AgentDirectory()
    await env.configure()
    execution = await env.run({"command": "agent.get", "id": "g", "name": "bot"})
    assert [(e.agent_id, e.name, e.status) for e in execution.state_events] == [
        (agent_id, "bot", "STARTING")
    ]
    assert list(env.names.alive()) == []


async def test_agents_this_worker_starts_are_its_own(env: Env) -> None:
    """Started agents and the agents of calls it placed are the ones it reconciles."""
    started = (await env.run(start())).result.agent_id
    call = await env.run({"command": "call.start", "id": "c", **call_body()})
    [event] = call.state_events
    assert event.labels == {"team": "calls"}
    assert {state.agent_id for state in env.names.alive()} == {started, call.result.agent_id}


async def test_a_call_meeting_another_callers_call_of_its_name_fails_and_leaves_it(
    env: Env,
) -> None:
    """Someone else's live call holds the name: the command's only attempt proves nothing
    about it, so failed `conflict`, the holder named, that call neither adopted nor hung up,
    and nobody dialled again."""
    theirs = call_body()
    theirs["sip"]["from_number"] = "+15550000000"
    status, placed = await env.emulator.call("POST", f"/v2/projects/{APP_ID}/call", json=theirs)
    assert status == 200
    env.emulator.log.clear()
    command = {"command": "call.start", "id": "c", **call_body()}
    result = (await env.run(command, received_at=issued_later())).result
    assert (result.outcome, result.agent_id, result.reconciled) == ("failed", None, False)
    assert result.error is not None
    assert result.error.code == "conflict"
    holder = placed["agent_id"]
    assert result.error.message == (
        "call.start: HTTP 409 conflict call session support-call already exists; the name "
        f"'support-call' is held by agent {holder} (STARTING in channel 'call-room'), which "
        "this command did not start; it was left alone"
    )
    assert (result.error.http_status, result.error.reason, result.error.retryable) == (
        409,
        "conflict",
        False,
    )
    assert result.error.details == {  # the API's body, and who holds the name
        "description": "call session support-call already exists",
        "error_type": "conflict",
        "holder": {"agent_id": holder, "status": "STARTING", "channel": "call-room"},
    }
    assert operations(env) == ["call.start", "agent.list", "agent.list", "agent.get"]
    call = env.emulator.state.get_call(APP_ID, placed["agent_id"])
    assert call["state"] != "hangup"
    assert env.names.resolve(APP_ID, "support-call") is None  # not reported as ours


async def test_a_call_run_again_after_its_state_was_published_adopts_its_own_call(
    env: Env,
) -> None:
    """A call.start run again (a crash after its agent's state was published) meets its own
    call: the directory says this command started the holder and call.get shows the same
    callee and caller, so it is `reconciled`, not dialled again; a different command of the
    same name is a `conflict`."""
    command = {"command": "call.start", "id": "c", **call_body()}
    placed = (await env.run(command)).result.agent_id
    env.emulator.log.clear()
    result = (await env.run(command)).result
    assert (result.outcome, result.agent_id, result.reconciled) == ("succeeded", placed, True)
    assert result.data == {"agent_id": placed}
    assert operations(env) == ["call.start", "agent.get", "call.get"]
    other = (await env.run(command | {"id": "other"}, received_at=issued_later())).result
    assert other.error is not None
    assert (other.outcome, other.error.code) == ("failed", "conflict")
    elsewhere = call_body()
    elsewhere["sip"]["to_number"] = "+19870000000"
    dialled = (
        await env.run({"command": "call.start", "id": "c", **elsewhere}, received_at=issued_later())
    ).result
    assert dialled.error is not None
    assert (dialled.outcome, dialled.error.code) == ("failed", "conflict")  # another callee
    assert len(env.emulator.log.entries("call.start")) == 3


async def test_a_call_run_again_naming_another_channel_does_not_adopt_its_call(
    env: Env,
) -> None:
    """The directory says this command placed the call holding the name, with the same callee
    and caller, but the call is in another channel than the command now names: not this
    command's call, so failed `conflict`, naming the channel the call is in."""
    command = {"command": "call.start", "id": "c", **call_body()}
    placed = (await env.run(command)).result.agent_id
    moved = call_body()
    moved["properties"]["channel"] = "room-9"
    result = (await env.run({"command": "call.start", "id": "c", **moved})).result
    assert result.error is not None
    assert (result.outcome, result.error.code) == ("failed", "conflict")
    assert result.error.details["holder"] == {
        "agent_id": placed,
        "status": "STARTING",
        "channel": "call-room",
    }


async def test_a_call_redelivered_to_a_new_worker_adopts_the_call_started_since(
    env: Env,
) -> None:
    """After a crash a new worker, which knows nothing of the first run, runs the record again:
    the holder started after the command was issued (so a run of it may have placed it) with
    the same callee, caller and channel, so it is `reconciled`, not dialled again."""
    command = {"command": "call.start", "id": "c", **call_body()}
    issued = datetime.now(UTC) - timedelta(seconds=1)
    placed = (await env.run(command, received_at=issued)).result.agent_id
    env.names = AgentDirectory()
    await env.configure()
    env.emulator.log.clear()
    result = (await env.run(command, received_at=issued)).result
    assert (result.outcome, result.agent_id, result.reconciled) == ("succeeded", placed, True)
    assert operations(env) == ["call.start", "agent.list", "agent.list", "agent.get", "call.get"]
    assert len(env.emulator.log.entries("call.start")) == 1


async def test_a_call_whose_name_is_held_by_a_stopping_agent_fails_without_dialling_again(
    env: Env,
) -> None:
    """The holder is leaving: the call was not placed, and sending it again could dial twice
    later, so the command fails naming the holder."""
    command = {"command": "call.start", "id": "c", **call_body()}
    placed = (await env.run(command)).result.agent_id
    await env.run({"command": "call.hangup", "id": "h", "agent_id": placed})
    result = (await env.run(command | {"id": "again"})).result
    assert (result.outcome, result.agent_id, result.reconciled) == ("failed", None, False)
    assert result.error is not None
    assert result.error.code == "conflict_unresolved"
    assert result.error.message == (
        "call.start: HTTP 409 conflict call session support-call already exists; "
        f"agent {placed} holding the name 'support-call' is STOPPING, so the call was not placed"
    )
    assert result.error.details == {
        "description": "call session support-call already exists",
        "error_type": "conflict",
    }
    assert len(env.emulator.log.entries("call.start")) == 2


async def test_a_listing_reports_changes_only_of_agents_the_directory_knows(env: Env) -> None:
    """agent.list publishes the new status of a known agent, under its name, and nothing of
    agents the worker never met."""
    known = (await env.run(start())).result.agent_id
    assert known is not None
    _, stranger = await env.emulator.call(
        "POST", f"/v2/projects/{APP_ID}/join", json=start_body("stranger")
    )
    env.emulator.state.end_agent(APP_ID, known, "FAILED", "RTC connection error")
    env.emulator.state.end_agent(APP_ID, stranger["agent_id"], "FAILED", "gone")
    listing = await env.run({"command": "agent.list", "id": "l", "state": "6"})
    assert [(e.agent_id, e.name, e.status) for e in listing.state_events] == [
        (known, "bot", "FAILED")
    ]


async def test_number_add_succeeds_and_its_lost_answer_is_read_back_with_retries(
    env: Env,
) -> None:
    """A plain import returns the API's body; after a lost answer the read-back of the number
    is an idempotent read, retried on a 503."""
    added = (await env.run(number_add())).result
    assert (added.outcome, added.data["phone_number"]) == ("succeeded", "+19876543210")
    await env.run({"command": "number.delete", "id": "d", "phone_number": "+19876543210"})
    inject(
        env,
        FaultRule(action="drop", operation="number.add", execute=True, count=1),
        FaultRule(operation="number.get", status=503, count=1),
    )
    result = (await env.run(number_add() | {"id": "again"})).result
    assert (result.outcome, result.data["phone_number"]) == ("succeeded", "+19876543210")
    assert operations(env)[-4:] == ["number.add", "number.add", "number.get", "number.get"]


async def test_deleting_a_number_never_imported_names_it(env: Env) -> None:
    """The not_found message says which number was not known to exist."""
    command = {"command": "number.delete", "id": "d", "phone_number": "+15550001"}
    result = (await env.run(command)).result
    assert result.error is not None
    assert "+15550001 is not known to have existed" in result.error.message


async def test_a_name_is_unknown_at_once_when_the_api_gives_no_names(env: Env) -> None:
    """agent.get without `name`: a lookup by name stops at the first get with `name_unknown`,
    not retryable, instead of reading every agent."""
    for n in range(3):
        await env.run(start(f"bot-{n}"))
    env.emulator.state.rules = Rules(name_in_get=False)
    env.names = AgentDirectory()
    await env.configure()
    env.emulator.log.clear()
    result = (
        await env.run({"command": "agent.speak", "id": "s", "name": "bot-2", "text": "hi"})
    ).result
    assert result.error is not None
    assert (result.outcome, result.error.code, result.error.retryable) == (
        "failed",
        "name_unknown",
        False,
    )
    assert operations(env).count("agent.get") == 1


async def test_a_name_lookup_reads_at_most_its_budget_of_agents(env: Env) -> None:
    """Among many agents of other names, the lookup stops after `MAX_GETS` gets:
    `lookup_budget_exhausted`, retryable."""
    env.emulator.state.max_agents_per_app = MAX_GETS * 2
    for n in range(MAX_GETS + 5):
        status, _ = await env.emulator.call(
            "POST", f"/v2/projects/{APP_ID}/join", json=start_body(f"other-{n}")
        )
        assert status == 200
    result = (
        await env.run({"command": "agent.speak", "id": "s", "name": "bot", "text": "hi"})
    ).result
    assert result.error is not None
    assert (result.outcome, result.error.code, result.error.retryable) == (
        "failed",
        "lookup_budget_exhausted",
        True,
    )
    assert operations(env).count("agent.get") == MAX_GETS


async def test_a_start_retried_after_a_lost_answer_without_names_is_unknown(env: Env) -> None:
    """The join ran and its answer was lost; the retry's 409 cannot be matched to an agent
    when agent.get gives no names: `unknown` (the agent may be running), never `failed`."""
    env.emulator.state.rules = Rules(name_in_get=False)
    inject(env, FaultRule(action="drop", operation="agent.start", execute=True, count=1))
    result = (await env.run(start())).result
    assert result.error is not None
    assert (result.outcome, result.error.code) == ("unknown", "ambiguous_name_unknown")
    assert "may be running" in result.error.message
    assert env.emulator.state.agent_count() == 1
