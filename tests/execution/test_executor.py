"""The executor end to end against the emulator: outcomes, retries, reconciliation, names."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import msgspec
import pytest

from contracts import ResultEvent, decode_command
from tests.emulator.harness import APP_ID, call_body, start_body
from tests.execution.conftest import Env, issued_later, number_add
from worker.agents.directory import AgentDirectory
from worker.api.client import ApiResponse, ConvoAIClient
from worker.api.requests import ApiRequest
from worker.emulator.faults import FaultRule, FaultSettings
from worker.emulator.state import DEFAULT_START_DELAY, DEFAULT_STOP_DELAY
from worker.execution import Executor
from worker.execution.executor import duration_ms
from worker.settings import Settings


def start(name: str = "bot", **extra: Any) -> dict[str, Any]:
    return {"command": "agent.start", "id": f"start-{name}", **start_body(name), **extra}


def speak(**address: str) -> dict[str, Any]:
    return {"command": "agent.speak", "id": "speak-1", "text": "Hello", **address}


def inject(env: Env, *rules: FaultRule) -> None:
    env.emulator.faults.replace(FaultSettings(rules=list(rules)))


def operations(env: Env) -> list[str]:
    return [entry.operation for entry in env.emulator.log.entries()]


async def test_start_succeeds_and_reports_the_new_agent(env: Env) -> None:
    """The result carries the response; the state event and the directory get the agent."""
    command = start(correlation_id="corr-1")
    command["properties"]["labels"] = {"team": "blue"}
    execution = await env.run(command)
    result = execution.result
    assert (result.outcome, result.command, result.attempts) == ("succeeded", "agent.start", 1)
    assert (result.app_id, result.name, result.correlation_id) == (APP_ID, "bot", "corr-1")
    assert result.agent_id == result.data["agent_id"]
    assert result.error is None
    [event] = execution.state_events
    assert (event.agent_id, event.name, event.status, event.source, event.command_id) == (
        result.agent_id,
        "bot",
        "STARTING",
        "command",
        "start-bot",
    )
    assert (event.channel, event.labels, event.app_id) == ("room-1", {"team": "blue"}, APP_ID)
    assert env.names.resolve(APP_ID, "bot") == result.agent_id


async def test_a_start_whose_lost_attempt_created_its_agent_adopts_it(env: Env) -> None:
    """The join ran but its answer was lost; the retry's 409 (`409:repeat`) finds the live
    agent of the name in the channel: succeeded with its data, `reconciled`, one agent. The
    list and get that found it are not attempts of the start."""
    inject(env, FaultRule(action="drop", operation="agent.start", execute=True, count=1))
    execution = await env.run(start())
    result = execution.result
    assert (result.outcome, result.reconciled) == ("succeeded", True), result.error
    assert result.data["name"] == "bot"
    assert result.attempts == 2
    assert operations(env) == [
        "agent.start",
        "agent.start",
        "agent.list",
        "agent.list",
        "agent.get",
    ]
    assert [(e.name, e.status) for e in execution.state_events] == [("bot", "STARTING")]
    assert env.emulator.state.agent_count() == 1
    assert [state.agent_id for state in env.names.alive()] == [result.agent_id]
    assert env.observer.retries == [("agent.start", "connection")]


async def test_a_start_meeting_a_live_agent_it_did_not_start_fails_with_conflict(
    env: Env,
) -> None:
    """A first attempt answered 409 proves nothing about the holder: failed `conflict`, the
    holder named and left running; the directory knew it, so one get found it."""
    first = (await env.run(start())).result
    result = (await env.run(start() | {"id": "again"}, received_at=issued_later())).result
    assert (result.outcome, result.agent_id, result.reconciled) == ("failed", None, False)
    assert result.error is not None
    assert (result.error.code, result.error.retryable) == ("conflict", False)
    assert result.error.details["holder"]["agent_id"] == first.agent_id
    assert result.error.message == (
        "agent.start: HTTP 409 TaskConflict agent bot already exists; the name 'bot' is held "
        f"by agent {first.agent_id} (STARTING in channel 'room-1'), which this command did not "
        "start; it was left alone"
    )
    assert operations(env)[1:] == ["agent.start", "agent.get"]
    assert env.names.resolve(APP_ID, "bot") == first.agent_id


async def test_a_start_in_doubt_does_not_adopt_a_holder_in_another_channel(env: Env) -> None:
    """Even after an attempt in doubt (a 503), a holder in another channel is not this
    command's agent: failed `conflict`, naming it."""
    elsewhere = start()
    elsewhere["properties"]["channel"] = "room-2"
    other = (await env.run(elsewhere | {"id": "elsewhere"})).result
    inject(env, FaultRule(operation="agent.start", status=503, count=1))
    result = (await env.run(start())).result
    assert (result.outcome, result.reconciled) == ("failed", False)
    assert result.error is not None
    assert result.error.code == "conflict"
    assert result.error.details["holder"] == {
        "agent_id": other.agent_id,
        "status": "STARTING",
        "channel": "room-2",
    }


async def test_a_start_refused_by_a_429_is_not_in_doubt(env: Env) -> None:
    """A 429 proves the attempt did nothing, so the retry's 409 is a first one: a stranger's
    agent of the same name in the same channel is a `conflict`, not adopted."""
    status, stranger = await env.emulator.call(
        "POST", f"/v2/projects/{APP_ID}/join", json=start_body("bot")
    )
    assert status == 200
    inject(env, FaultRule(operation="agent.start", status=429, count=1))
    result = (await env.run(start(), received_at=issued_later())).result
    assert (result.outcome, result.reconciled, result.attempts) == ("failed", False, 2)
    assert result.error is not None
    assert result.error.code == "conflict"
    assert result.error.details["holder"]["agent_id"] == stranger["agent_id"]


async def test_a_restart_waits_for_the_stopping_agent_then_starts_a_new_one(
    clocked_env: Env,
) -> None:
    """stop then start with the same name: the start gets 409 while the old agent is STOPPING,
    polls it with backoff until STOPPED, then starts a new agent that the name points at."""
    env = clocked_env
    old = (await env.run(start())).result.agent_id
    stopped = await env.run({"command": "agent.stop", "id": "stop", "name": "bot"})
    assert [(e.agent_id, e.status) for e in stopped.state_events] == [(old, "STOPPING")]
    restarted = await env.run(start() | {"id": "restart"})
    result = restarted.result
    assert result.outcome == "succeeded", result.error
    assert (result.reconciled, result.data["agent_id"]) == (False, result.agent_id)
    assert result.agent_id not in (None, old)
    assert [(e.agent_id, e.status) for e in restarted.state_events] == [
        (old, "STOPPED"),
        (result.agent_id, "STARTING"),
    ]
    assert env.names.resolve(APP_ID, "bot") == result.agent_id
    ops = operations(env)[2:]
    assert ops[0] == "agent.start"
    assert ops[-1] == "agent.start"
    assert set(ops[1:-1]) == {"agent.get"}
    assert len(env.sleeps.delays) == len(ops) - 3  # one backoff before each repeated get
    assert sum(env.sleeps.delays) >= DEFAULT_STOP_DELAY
    spoken = (await env.run(speak(name="bot"))).result
    assert (spoken.outcome, spoken.agent_id) == ("succeeded", result.agent_id)


async def test_a_start_gives_up_when_the_name_stays_held_past_its_budget(
    clocked_env: Env,
) -> None:
    """The holder never finishes stopping within the command's budget: failed, retryable."""
    env = clocked_env
    await env.configure(command_timeout_seconds=0.5)
    holder = (await env.run(start())).result.agent_id
    await env.run({"command": "agent.stop", "id": "stop", "name": "bot"})
    result = (await env.run(start() | {"id": "restart"})).result
    assert result.outcome == "failed"
    assert result.error is not None
    assert (result.error.code, result.error.http_status, result.error.retryable) == (
        "name_still_held",
        409,
        True,
    )
    assert result.error.message == (
        f"agent.start: HTTP 409 TaskConflict agent bot already exists; agent {holder} "
        "(STOPPING) still holds the name 'bot'; the command's budget ran out"
    )
    assert result.error.details == {"detail": "agent bot already exists", "reason": "TaskConflict"}
    assert env.emulator.state.agent_count() == 1


async def test_conflict_without_a_matching_agent_is_unresolved(env: Env) -> None:
    """When the 409 cannot be matched to an agent, the command fails with the API's answer."""
    inject(env, FaultRule(operation="agent.start", status=409, reason="TaskConflict", count=1))
    result = (await env.run(start())).result
    assert result.outcome == "failed"
    assert result.error is not None
    assert (result.error.code, result.error.http_status, result.error.reason) == (
        "conflict_unresolved",
        409,
        "TaskConflict",
    )


async def test_names_resolve_through_the_directory(env: Env) -> None:
    """An agent command by name uses the id the directory recorded at start."""
    agent_id = (await env.run(start())).result.agent_id
    result = (await env.run(speak(name="bot"))).result
    assert (result.outcome, result.agent_id, result.name, result.attempts) == (
        "succeeded",
        agent_id,
        "bot",
        1,
    )


async def test_unknown_names_are_looked_up_through_the_api(env: Env) -> None:
    """A name the directory lacks is found with list + get, then remembered."""
    agent_id = (await env.run(start())).result.agent_id
    env.names = AgentDirectory()
    await env.configure()
    result = (await env.run(speak(name="bot"))).result
    assert (result.outcome, result.agent_id, result.attempts) == ("succeeded", agent_id, 1)
    assert operations(env)[-3:] == ["agent.list", "agent.get", "agent.speak"]
    assert env.names.resolve(APP_ID, "bot") == agent_id


async def test_the_name_lookup_asks_for_one_state_per_query(clocked_env: Env) -> None:
    """The API documents one `state` per list query: RUNNING, then STARTING."""
    env = clocked_env
    await env.configure(api_max_attempts=1)
    env.emulator.state.start_delay = 60.0  # the agent stays STARTING
    agent_id = (await env.run(start())).result.agent_id
    env.names = AgentDirectory()
    await env.configure()
    result = (await env.run(speak(name="bot"))).result
    assert result.agent_id == agent_id
    queries = [entry.query for entry in env.emulator.log.entries("agent.list")]
    assert [dict(parse_qsl(query))["state"] for query in queries] == ["2", "1"]


async def test_a_name_whose_agent_is_stopping_resolves_to_nothing(env: Env) -> None:
    """Neither the directory nor the API lookup hands out a dying agent for a name."""
    await env.run(start())
    await env.run({"command": "agent.stop", "id": "stop", "name": "bot"})
    env.names = AgentDirectory()
    await env.configure()
    result = (await env.run(speak(name="bot"))).result
    assert result.error is not None
    assert (result.outcome, result.error.code) == ("failed", "agent_not_found")
    assert "agent.speak" not in operations(env)


async def test_queries_about_a_session_that_ended_still_find_it_by_name(env: Env) -> None:
    """agent.get and agent.turns by name reach the stopped agent; actions by name do not."""
    agent_id = (await env.run(start())).result.agent_id
    await env.run(speak(name="bot"))
    await env.run({"command": "agent.stop", "id": "stop", "name": "bot"})
    for command in ("agent.get", "agent.turns"):
        result = (await env.run({"command": command, "id": command, "name": "bot"})).result
        assert (result.outcome, result.agent_id) == ("succeeded", agent_id), result.error
    refused = (await env.run(speak(name="bot") | {"id": "speak-2"})).result
    assert refused.error is not None
    assert (refused.outcome, refused.error.code) == ("failed", "agent_not_found")


async def test_a_name_nobody_has_fails_clearly(env: Env) -> None:
    """No live agent with that name: failed with `agent_not_found`, nothing sent."""
    result = (await env.run(speak(name="ghost"))).result
    assert result.outcome == "failed"
    assert result.error is not None
    assert result.error.code == "agent_not_found"
    assert "ghost" in result.error.message
    assert "agent.speak" not in operations(env)


@pytest.mark.parametrize("stop", ["agent.stop", "call.hangup"])
async def test_stopping_twice_reports_stopping_once_and_then_already_gone(
    env: Env, stop: str
) -> None:
    """A stop makes the agent STOPPING (the API stops it asynchronously); the second gets 404
    for an agent known to have existed: succeeded, `already_gone`, nothing published."""
    if stop == "agent.stop":
        agent_id = (await env.run(start())).result.agent_id
    else:
        call = {"command": "call.start", "id": "call", **call_body()}
        agent_id = (await env.run(call)).result.agent_id
    assert agent_id is not None
    command = {"command": stop, "id": "stop", "agent_id": agent_id}
    first = await env.run(command)
    second = await env.run(command)
    assert first.result.outcome == second.result.outcome == "succeeded"
    assert (first.result.already_gone, second.result.already_gone) == (False, True)
    assert [e.status for e in first.state_events] == ["STOPPING"]
    assert second.state_events == []
    assert second.result.data is None
    assert env.emulator.log.entries(stop)[-1].status == 404


@pytest.mark.parametrize(
    ("stop", "body"),
    [
        ("agent.stop", {"detail": "agent TYPO not found", "reason": "TaskNotFound"}),
        ("call.hangup", {"description": "call TYPO not found", "error_type": "not_found"}),
    ],
)
async def test_stopping_an_id_never_seen_fails_with_not_found(
    env: Env, stop: str, body: dict[str, str]
) -> None:
    """A typo or a wrong app_id is not success: failed `not_found`, the API's body kept, and
    no state event for an id that never existed."""
    execution = await env.run({"command": stop, "id": "stop", "agent_id": "TYPO"})
    result = execution.result
    assert result.outcome == "failed"
    assert result.error is not None
    assert (result.error.code, result.error.http_status, result.error.retryable) == (
        "not_found",
        404,
        False,
    )
    assert result.error.details == body
    assert "not known to have existed" in result.error.message
    assert result.already_gone is False
    assert execution.state_events == []
    assert env.names.state(APP_ID, "TYPO") is None


async def test_a_stop_whose_answer_was_lost_is_already_gone_on_its_retry(env: Env) -> None:
    """The leave ran but its answer was lost; the retry's 404 is our own stop."""
    agent_id = (await env.run(start())).result.agent_id
    env.names = AgentDirectory()  # a worker that does not know the agent
    await env.configure()
    inject(env, FaultRule(action="drop", operation="agent.stop", execute=True, count=1))
    execution = await env.run({"command": "agent.stop", "id": "stop", "agent_id": agent_id})
    assert (execution.result.outcome, execution.result.already_gone) == ("succeeded", True)
    assert [e.status for e in execution.state_events] == ["STOPPING"]


async def test_stopping_by_name_an_agent_already_stopping_is_already_gone(env: Env) -> None:
    """The name no longer resolves to a live agent, but the directory knows its last agent."""
    agent_id = (await env.run(start())).result.agent_id
    await env.run({"command": "agent.stop", "id": "stop-1", "name": "bot"})
    again = (await env.run({"command": "agent.stop", "id": "stop-2", "name": "bot"})).result
    assert (again.outcome, again.agent_id, again.already_gone) == ("succeeded", agent_id, True)


async def test_deleting_a_missing_number_fails_with_not_found(env: Env) -> None:
    """number.delete of a number that is not there: nothing was deleted, and the result says so."""
    result = (
        await env.run({"command": "number.delete", "id": "d", "phone_number": "+15550001"})
    ).result
    assert (result.outcome, result.phone_number, result.data) == ("failed", "+15550001", None)
    assert result.error is not None
    assert (result.error.code, result.error.reason) == ("not_found", "not_found")


async def test_a_delete_whose_answer_came_too_late_is_already_gone_on_its_retry(
    env: Env,
) -> None:
    """The delete ran but answered after the timeout; the retry's 404 is our own delete."""
    await env.run(number_add())
    await env.configure(api_timeout_seconds=0.1)
    inject(env, FaultRule(action="delay", operation="number.delete", delay_ms=300, count=1))
    command = {"command": "number.delete", "id": "d", "phone_number": "+19876543210"}
    result = (await env.run(command)).result
    assert (result.outcome, result.already_gone, result.attempts) == ("succeeded", True, 2)


async def test_results_carry_the_apis_request_id(env: Env) -> None:
    """The request id of the last response, for successes as for failures."""
    result = (await env.run(start())).result
    assert result.request_id is not None
    assert result.request_id.startswith("emu-")
    failed = (await env.run(speak(agent_id="NOPE"))).result
    assert failed.error is not None
    assert failed.request_id == failed.error.request_id is not None


async def test_transient_errors_are_retried_with_backoff(env: Env) -> None:
    """Two 503s, then success: three attempts, two waits, observed as server errors."""
    inject(env, FaultRule(operation="agent.get", status=503, count=2))
    agent_id = (await env.run(start())).result.agent_id
    result = (await env.run({"command": "agent.get", "id": "g", "agent_id": agent_id})).result
    assert (result.outcome, result.attempts) == ("succeeded", 3)
    assert len(env.sleeps.delays) == 2
    assert all(0 <= d <= 0.4 for d in env.sleeps.delays)
    assert env.observer.retries == [("agent.get", "server_error")] * 2
    assert env.observer.requests[-3:] == [
        ("agent.get", "5xx"),
        ("agent.get", "5xx"),
        ("agent.get", "2xx"),
    ]


async def test_retry_after_is_honoured(env: Env) -> None:
    """A 429 with Retry-After waits exactly that long, even for speak."""
    agent_id = (await env.run(start())).result.agent_id
    inject(env, FaultRule(operation="agent.speak", status=429, retry_after=1.5, count=1))
    result = (await env.run(speak(agent_id=agent_id or ""))).result
    assert (result.outcome, result.attempts) == ("succeeded", 2)
    assert env.sleeps.delays == [1.5]
    assert env.observer.requests[-2][1] == "429"
    assert env.observer.retries == [("agent.speak", "rate_limited")]


async def test_quota_refusals_wait_the_long_backoff(env: Env) -> None:
    """422 ConcurrencyLimitExceeded is retried after at least half the quota backoff."""
    await env.configure(api_quota_backoff_seconds=8.0)
    inject(
        env,
        FaultRule(operation="agent.start", status=422, reason="ConcurrencyLimitExceeded", count=1),
    )
    result = (await env.run(start())).result
    assert result.outcome == "succeeded"
    [delay] = env.sleeps.delays
    assert 4.0 <= delay <= 8.0
    assert env.observer.retries == [("agent.start", "quota")]


async def test_exhausted_retries_fail_with_retries_exhausted(env: Env) -> None:
    """A 503 on every attempt ends after `api_max_attempts` with the last error."""
    await env.configure(api_max_attempts=3)
    inject(env, FaultRule(status=503))
    result = (await env.run(start())).result
    assert (result.outcome, result.attempts) == ("failed", 3)
    assert result.error is not None
    assert (result.error.code, result.error.http_status, result.error.retryable) == (
        "retries_exhausted",
        503,
        True,
    )
    assert len(env.sleeps.delays) == 2


async def test_the_deadline_bounds_the_retry_budget(env: Env) -> None:
    """A wait that would end after `expires_at` is not started: retries_exhausted at once."""
    inject(env, FaultRule(status=503, retry_after=30))
    expires = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
    result = (await env.run(start(expires_at=expires))).result
    assert (result.outcome, result.attempts) == ("failed", 1)
    assert result.error is not None
    assert result.error.code == "retries_exhausted"
    assert env.sleeps.delays == []


async def test_expired_commands_are_not_sent(env: Env) -> None:
    """Past `expires_at` nothing is sent and the outcome is `expired`."""
    expires = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    result = (await env.run(start(expires_at=expires))).result
    assert (result.outcome, result.attempts, result.data) == ("expired", 0, None)
    assert result.error is not None
    assert result.error.code == "expired"
    assert operations(env) == []


async def test_without_expires_at_an_old_record_still_runs(env: Env) -> None:
    """Without `expires_at` a backlog record never expires; only its retry budget is bounded."""
    await env.configure(command_timeout_seconds=60)
    old = datetime.now(UTC) - timedelta(hours=2)
    result = (await env.run(start(), received_at=old)).result
    assert result.outcome == "succeeded"
    assert result.received_at == old


@pytest.mark.parametrize(
    ("rule", "code"),
    [
        (FaultRule(operation="agent.speak", status=503), "ambiguous_server_error"),
        (FaultRule(operation="agent.speak", action="drop"), "ambiguous_connection"),
    ],
)
async def test_non_idempotent_commands_are_not_resent_after_ambiguous_failures(
    env: Env, rule: FaultRule, code: str
) -> None:
    """speak after a 503 or a dropped connection: outcome unknown, sent once."""
    agent_id = (await env.run(start())).result.agent_id
    inject(env, rule)
    result = (await env.run(speak(agent_id=agent_id or ""))).result
    assert (result.outcome, result.attempts) == ("unknown", 1)
    assert result.error is not None
    assert result.error.code == code
    assert "not idempotent" in result.error.message
    assert result.error.retryable is None
    assert len(env.emulator.log.entries("agent.speak")) == 1


async def test_call_start_is_not_resent_after_a_timeout(env: Env) -> None:
    """call.start that times out may have dialled: unknown, not re-sent."""
    await env.configure(api_timeout_seconds=0.1)
    inject(env, FaultRule(operation="call.start", action="delay", delay_ms=300))
    result = (await env.run({"command": "call.start", "id": "c", **call_body()})).result
    assert result.outcome == "unknown"
    assert result.error is not None
    assert result.error.code == "ambiguous_timeout"


async def test_non_idempotent_commands_are_resent_after_connect_errors() -> None:
    """A refused connection proves nothing was sent: speak is retried to the last attempt."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings(
        api_base_url=f"http://127.0.0.1:{port}/api", app_id="app", api_max_attempts=3
    )
    sleeps: list[float] = []

    async def no_wait(seconds: float) -> None:
        sleeps.append(seconds)

    async with ConvoAIClient(settings) as client:
        executor = Executor(client, settings, AgentDirectory(), sleep=no_wait)
        decoded = decode_command(b'{"command":"agent.speak","id":"s","agent_id":"A","text":"x"}')
        result = (await executor.execute(decoded, received_at=datetime.now(UTC))).result
    assert (result.outcome, result.attempts, len(sleeps)) == ("failed", 3, 2)
    assert result.error is not None
    assert result.error.code == "retries_exhausted"
    assert result.error.http_status is None


async def test_client_errors_fail_with_the_apis_details(env: Env) -> None:
    """A 400 fails at once with status, reason, request id and a stable code."""
    inject(env, FaultRule(operation="agent.start", status=400, reason="InvalidFieldValue"))
    result = (await env.run(start())).result
    assert (result.outcome, result.attempts) == ("failed", 1)
    assert result.error is not None
    assert (result.error.code, result.error.http_status, result.error.reason) == (
        "invalid_request",
        400,
        "InvalidFieldValue",
    )
    assert result.error.request_id is not None
    assert result.error.retryable is False
    assert result.error.details == {"detail": "injected fault", "reason": "InvalidFieldValue"}


async def test_a_422_with_an_unknown_reason_on_an_agent_endpoint_is_retried(env: Env) -> None:
    """On agent endpoints the API documents 422 only as a quota: waited out like one."""
    inject(env, FaultRule(operation="agent.start", status=422, reason="AccessLimit", count=1))
    result = (await env.run(start())).result
    assert (result.outcome, result.attempts) == ("succeeded", 2)
    assert env.observer.retries == [("agent.start", "quota")]


async def test_a_command_without_app_id_fails_before_sending(env: Env) -> None:
    """Agent commands need an App ID (the command's or CONVOAI_APP_ID); a phone-number
    command names none in its path, but without one no tenant's credentials may sign it."""
    await env.configure(app_id="")
    result = (await env.run(start())).result
    assert result.outcome == "failed"
    assert result.error is not None
    assert result.error.code == "missing_app_id"
    listing = (await env.run({"command": "number.list", "id": "n"})).result
    assert listing.outcome == "rejected"
    assert listing.error is not None
    assert listing.error.code == "app_id_not_allowed"
    assert operations(env) == []


async def test_number_add_whose_response_was_lost_reports_the_number(env: Env) -> None:
    """The import ran but its answer was lost: the retry's 409 is read back as success."""
    inject(env, FaultRule(action="drop", operation="number.add", execute=True, count=1))
    result = (await env.run(number_add())).result
    assert (result.outcome, result.attempts) == ("succeeded", 2)
    assert result.data["phone_number"] == "+19876543210"
    assert operations(env) == ["number.add", "number.add", "number.get"]


async def test_number_add_of_an_existing_number_fails(env: Env) -> None:
    """A first-attempt 409 means someone else imported it: conflict."""
    await env.run(number_add())
    result = (await env.run(number_add())).result
    assert result.outcome == "failed"
    assert result.error is not None
    assert (result.error.code, result.error.reason) == ("conflict", "phone_number_exists")


async def test_get_and_list_publish_statuses_the_directory_did_not_know(env: Env) -> None:
    """An agent that failed on its own is reported by agent.get and agent.list, once."""
    agent_id = (await env.run(start())).result.agent_id
    assert agent_id is not None
    get = {"command": "agent.get", "id": "g", "agent_id": agent_id}
    assert (await env.run(get)).state_events == []
    env.emulator.state.end_agent(APP_ID, agent_id, "FAILED", "RTC connection error")
    listing = await env.run({"command": "agent.list", "id": "l", "state": "6"})
    assert [(e.agent_id, e.status) for e in listing.state_events] == [(agent_id, "FAILED")]
    assert listing.result.agent_id is None
    assert (await env.run(get)).state_events == []


async def test_call_start_reports_its_agent(env: Env) -> None:
    """The agent a call creates is published as STARTING under the call's name."""
    execution = await env.run({"command": "call.start", "id": "c", **call_body()})
    [event] = execution.state_events
    assert (event.agent_id, event.name, event.status, event.channel) == (
        execution.result.agent_id,
        "support-call",
        "STARTING",
        "call-room",
    )


class ScriptedClient:
    """A client whose every `send` is answered by `reply`; it records the time left."""

    def __init__(self, reply: Callable[[ApiRequest], Awaitable[ApiResponse]]) -> None:
        self._reply = reply
        self.time_left: list[float | None] = []

    async def send(self, request: ApiRequest, *, time_left: float | None = None) -> ApiResponse:
        self.time_left.append(time_left)
        return await self._reply(request)


async def run_scripted(
    reply: Callable[[ApiRequest], Awaitable[ApiResponse]], command: dict[str, Any]
) -> ResultEvent:
    executor = Executor(ScriptedClient(reply), Settings(app_id="a"), AgentDirectory())
    decoded = decode_command(msgspec.json.encode(command))
    return (await executor.execute(decoded, received_at=datetime.now(UTC))).result


async def test_a_bug_is_raised_for_the_pipeline_to_contain() -> None:
    """An unexpected exception is not dressed up as a command outcome here: the pipeline turns
    it into `internal_error` with a dead letter and a count (tests/component)."""

    async def boom(request: ApiRequest) -> ApiResponse:
        raise RuntimeError(f"boom on {request.operation}")

    with pytest.raises(RuntimeError, match=r"boom on agent\.get"):
        await run_scripted(boom, {"command": "agent.get", "id": "g", "agent_id": "A"})


async def test_a_start_answered_without_an_agent_id_is_unknown_when_not_found() -> None:
    """A 2xx start response without `agent_id` means the agent may run: `unknown`, not
    `failed`, when no agent of its name can be found."""

    async def garbled(request: ApiRequest) -> ApiResponse:
        return ApiResponse(200, {"unexpected": True}, None)

    result = await run_scripted(garbled, start())
    assert result.outcome == "unknown"
    assert result.error is not None
    assert result.error.code == "ambiguous_no_agent_id"


async def test_each_request_gets_the_time_left_to_the_deadline() -> None:
    """The client is told how long the command may still take."""

    async def ok(request: ApiRequest) -> ApiResponse:
        return ApiResponse(200, {"agent_id": "A", "status": "RUNNING"}, None)

    client = ScriptedClient(ok)
    executor = Executor(client, Settings(app_id="a"), AgentDirectory())
    expires = (datetime.now(UTC) + timedelta(seconds=10)).isoformat()
    decoded = decode_command(msgspec.json.encode(start(expires_at=expires)))
    await executor.execute(decoded, received_at=datetime.now(UTC))
    [time_left] = client.time_left
    assert time_left is not None
    assert 9 < time_left <= 10


async def test_cancellation_propagates() -> None:
    """Cancelling the execution cancels it; no result is invented."""

    async def hang(request: ApiRequest) -> ApiResponse:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    executor = Executor(ScriptedClient(hang), Settings(app_id="a"), AgentDirectory())
    decoded = decode_command(b'{"command":"agent.get","id":"g","agent_id":"A"}')
    task = asyncio.create_task(executor.execute(decoded, received_at=datetime.now(UTC)))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_reconcile_check_reads_the_status_the_api_reports(clocked_env: Env) -> None:
    """`read_status` is what the API says now: RUNNING, STOPPING after a stop, STOPPED once the
    stop completed or the API does not know the agent (404), None when the API cannot tell."""
    env = clocked_env
    assert env.clock is not None
    executor = await env.configure(api_max_attempts=2, command_timeout_seconds=5)
    agent_id = (await env.run(start())).result.agent_id
    assert agent_id is not None
    assert await executor.read_status(APP_ID, agent_id) == "STARTING"
    env.clock.advance(DEFAULT_START_DELAY)
    assert await executor.read_status(APP_ID, agent_id) == "RUNNING"
    await env.run({"command": "agent.stop", "id": "stop", "agent_id": agent_id})
    assert await executor.read_status(APP_ID, agent_id) == "STOPPING"
    env.clock.advance(DEFAULT_STOP_DELAY + 1)
    assert await executor.read_status(APP_ID, agent_id) == "STOPPED"
    assert await executor.read_status(APP_ID, "never-started") == "STOPPED"
    inject(env, FaultRule(operation="agent.get", status=503))
    assert await executor.read_status(APP_ID, agent_id) is None
    assert operations(env)[-2:] == ["agent.get", "agent.get"]  # retried within its budget


def test_durations_keep_the_microseconds_the_timestamps_carry() -> None:
    """9.64 ms, not the binary float 9.639999999999999 a subtraction gives; never negative."""
    start = datetime(2026, 3, 1, tzinfo=UTC)
    assert duration_ms(start, start + timedelta(microseconds=9640)) == 9.64
    assert duration_ms(start, start - timedelta(seconds=1)) == 0.0
