"""The executor end to end against the emulator: outcomes, retries, reconciliation, names."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from contracts import ResultEvent, decode_command
from tests.emulator.harness import APP_ID, start_body
from tests.execution.conftest import Env
from worker.api.client import ApiResponse, ConvoAIClient
from worker.api.requests import ApiRequest
from worker.emulator.faults import FaultRule, FaultSettings
from worker.execution import AgentDirectory, Executor
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
        "RUNNING",
        "command",
        "start-bot",
    )
    assert (event.channel, event.labels, event.app_id) == ("room-1", {"team": "blue"}, APP_ID)
    assert env.names.resolve(APP_ID, "bot") == result.agent_id


async def test_start_conflict_reconciles_to_the_existing_agent(env: Env) -> None:
    """409 TaskConflict finds the agent by name and succeeds with its data, no new agent."""
    first = (await env.run(start())).result
    env.names = AgentDirectory()  # a worker that has not seen the first start
    await env.configure()
    again = await env.run(start())
    result = again.result
    assert (result.outcome, result.agent_id) == ("succeeded", first.agent_id)
    assert result.data["name"] == "bot"
    assert result.attempts == 3
    assert operations(env)[1:] == ["agent.start", "agent.list", "agent.get"]
    assert [e.status for e in again.state_events] == ["RUNNING"]
    assert env.emulator.state.agent_count() == 1


async def test_start_whose_response_was_lost_is_retried_and_reconciled(env: Env) -> None:
    """The join ran but its answer was lost: the retry's 409 is reconciled to that agent."""
    inject(env, FaultRule(action="drop", operation="agent.start", execute=True, count=1))
    result = (await env.run(start())).result
    assert result.outcome == "succeeded"
    assert env.emulator.state.agent_count() == 1
    assert operations(env) == ["agent.start", "agent.start", "agent.list", "agent.get"]
    assert env.observer.retries == [("agent.start", "connection")]


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
    assert (result.outcome, result.agent_id) == ("succeeded", agent_id)
    assert operations(env)[-3:] == ["agent.list", "agent.get", "agent.speak"]
    assert env.names.resolve(APP_ID, "bot") == agent_id


async def test_a_name_nobody_has_fails_clearly(env: Env) -> None:
    """No live agent with that name: failed with `agent_not_found`, nothing sent."""
    result = (await env.run(speak(name="ghost"))).result
    assert result.outcome == "failed"
    assert result.error is not None
    assert result.error.code == "agent_not_found"
    assert "ghost" in result.error.message
    assert "agent.speak" not in operations(env)


@pytest.mark.parametrize("stop", ["agent.stop", "call.hangup"])
async def test_stopping_twice_succeeds_and_reports_stopped_once(env: Env, stop: str) -> None:
    """The second stop/hangup gets 404 and is `already done`; STOPPED is published once."""
    if stop == "agent.stop":
        agent_id = (await env.run(start())).result.agent_id
    else:
        call = {"command": "call.start", "id": "call", **_call_body()}
        agent_id = (await env.run(call)).result.agent_id
    assert agent_id is not None
    command = {"command": stop, "id": "stop", "agent_id": agent_id}
    first = await env.run(command)
    second = await env.run(command)
    assert first.result.outcome == second.result.outcome == "succeeded"
    assert [e.status for e in first.state_events] == ["STOPPED"]
    assert second.state_events == []
    assert second.result.data is None
    assert env.emulator.log.entries(stop)[-1].status == 404


async def test_deleting_a_missing_number_succeeds(env: Env) -> None:
    """number.delete on a number that is not there is already done."""
    result = (
        await env.run({"command": "number.delete", "id": "d", "phone_number": "+15550001"})
    ).result
    assert (result.outcome, result.phone_number, result.data) == ("succeeded", "+15550001", None)


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
    result = (await env.run({"command": "call.start", "id": "c", **_call_body()})).result
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


async def test_a_command_without_app_id_fails_before_sending(env: Env) -> None:
    """Agent commands need an App ID (the command's or CONVOAI_APP_ID)."""
    await env.configure(app_id="")
    result = (await env.run(start())).result
    assert result.outcome == "failed"
    assert result.error is not None
    assert result.error.code == "missing_app_id"
    assert operations(env) == []
    listing = (await env.run({"command": "number.list", "id": "n"})).result
    assert listing.outcome == "succeeded"


async def test_number_add_whose_response_was_lost_reports_the_number(env: Env) -> None:
    """The import ran but its answer was lost: the retry's 409 is read back as success."""
    inject(env, FaultRule(action="drop", operation="number.add", execute=True, count=1))
    result = (await env.run(_number_add())).result
    assert result.outcome == "succeeded"
    assert result.data["phone_number"] == "+19876543210"
    assert operations(env) == ["number.add", "number.add", "number.get"]


async def test_number_add_of_an_existing_number_fails(env: Env) -> None:
    """A first-attempt 409 means someone else imported it: conflict."""
    await env.run(_number_add())
    result = (await env.run(_number_add())).result
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
    execution = await env.run({"command": "call.start", "id": "c", **_call_body()})
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


async def test_a_bug_becomes_an_internal_error_result() -> None:
    """Unexpected exceptions are reported as `internal_error`, not raised."""

    async def boom(request: ApiRequest) -> ApiResponse:
        raise RuntimeError(f"boom on {request.operation}")

    result = await run_scripted(boom, {"command": "agent.get", "id": "g", "agent_id": "A"})
    assert result.outcome == "failed"
    assert result.error is not None
    assert result.error.code == "internal_error"
    assert "boom on agent.get" in result.error.message


async def test_an_unreadable_success_fails_with_invalid_response() -> None:
    """A start response without `agent_id` cannot be acted on."""

    async def garbled(request: ApiRequest) -> ApiResponse:
        return ApiResponse(200, {"unexpected": True}, None)

    result = await run_scripted(garbled, start())
    assert result.outcome == "failed"
    assert result.error is not None
    assert (result.error.code, result.error.retryable) == ("invalid_response", True)


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


def _call_body() -> dict[str, Any]:
    return {
        "name": "support-call",
        "sip": {
            "to_number": "+19876543210",
            "from_number": "+11234567890",
            "rtc_uid": "100",
            "rtc_token": "t",
        },
        "properties": {
            "channel": "call-room",
            "token": "t",
            "agent_rtc_uid": "111",
            "remote_rtc_uids": ["100"],
        },
    }


def _number_add() -> dict[str, Any]:
    return {
        "command": "number.add",
        "id": "add",
        "provider": "byo",
        "phone_number": "+19876543210",
        "label": "Sales",
        "inbound_config": {"allowed_addresses": ["10.0.0.0/8"]},
        "outbound_config": {"address": "sip.example.com"},
    }
