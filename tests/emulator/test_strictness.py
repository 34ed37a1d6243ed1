"""The emulator as strict as Agora (`worker.emulator.rules`), and each strictness switched off."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest

from tests.emulator.harness import (
    APP_ID,
    FakeClock,
    RunningEmulator,
    basic_auth,
    running_emulator,
    start_body,
)
from tests.emulator.test_telephony_and_numbers import call_body, number_body
from worker.emulator.config import EmulatorConfig
from worker.emulator.faults import FaultRule, FaultSettings
from worker.emulator.rules import Rules
from worker.emulator.state import DEFAULT_START_DELAY, DEFAULT_STOP_DELAY

# Importing the SDK (for its token builder) warns about its pydantic-v1-style models.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Valid config keys have changed:UserWarning"),
    pytest.mark.filterwarnings("ignore:Support for class-based `config`:DeprecationWarning"),
]

PROJECT = f"/v2/projects/{APP_ID}"
TOKEN_APP = "0123456789abcdef0123456789abcdef"  # tokens need a 32-character App ID
CERTIFICATE = "fedcba9876543210fedcba9876543210"


def without(body: dict[str, Any], *fields: str) -> dict[str, Any]:
    """`body` with these `properties` fields left out."""
    properties = {k: v for k, v in body["properties"].items() if k not in fields}
    return {**body, "properties": properties}


def with_properties(body: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**body, "properties": {**body["properties"], **fields}}


def token(app_id: str = TOKEN_APP, certificate: str = CERTIFICATE) -> str:
    """A ConvoAI token made by the official SDK."""
    from agora_agent.agentkit.token import generate_convo_ai_token  # noqa: PLC0415 - test-only

    return generate_convo_ai_token(app_id, certificate, "room-1", 1001, token_expire=3600)


async def join(emulator: RunningEmulator, body: dict[str, Any]) -> tuple[int, Any]:
    return await emulator.call("POST", f"{PROJECT}/join", json=body)


async def status_of(emulator: RunningEmulator, agent_id: str) -> dict[str, Any]:
    reply: dict[str, Any] = (await emulator.call("GET", f"{PROJECT}/agents/{agent_id}"))[1]
    return reply


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (without(start_body(), "llm"), "properties.llm is required"),
        (without(start_body(), "tts"), "properties.tts is required"),
        (with_properties(start_body(), llm={"api_key": "k"}), "properties.llm.url is required"),
        (with_properties(start_body(), tts={"params": {}}), "properties.tts.vendor is required"),
        (start_body(preset="whisper_large"), "preset 'whisper_large' does not exist"),
        (
            start_body(preset="openai_gpt_4o_mini,openai_gpt_5_mini"),
            "preset names two llm presets",
        ),
        (
            with_properties(start_body(), idle_timeout=-1),
            "properties.idle_timeout must be an integer in 0..259200",
        ),
        (
            with_properties(start_body(), agent_rtc_uid="bot"),
            "properties.agent_rtc_uid must be an integer UID (or set enable_string_uid)",
        ),
        (
            with_properties(start_body(), remote_rtc_uids=["user-1"]),
            "properties.remote_rtc_uids must hold integer UIDs or * (or set enable_string_uid)",
        ),
    ],
    ids=[
        "no-llm",
        "no-tts",
        "llm-without-url",
        "tts-without-vendor",
        "unknown-preset",
        "two-llm-presets",
        "negative-idle-timeout",
        "string-agent-uid",
        "string-remote-uid",
    ],
)
async def test_a_join_is_checked_as_the_reference_documents(
    emulator: RunningEmulator, body: dict[str, Any], detail: str
) -> None:
    """400 with the field at fault; the same body passes once join validation is off."""
    status, reply = await join(emulator, body)
    assert (status, reply["detail"]) == (400, detail)
    async with running_emulator(EmulatorConfig(rules=Rules(validate_join=False))) as forgiving:
        status, reply = await forgiving.call(
            "POST", f"{PROJECT}/join", json=body, headers={"Authorization": basic_auth()}
        )
        assert status == 200, reply


@pytest.mark.parametrize(
    "body",
    [
        without(start_body(preset="openai_gpt_4o_mini,openai_tts_1"), "llm", "tts"),
        without(start_body(pipeline_id="pipe-1"), "llm", "tts"),
        with_properties(without(start_body(), "llm", "tts"), mllm={"enable": True}),
        with_properties(start_body(), enable_string_uid=True, agent_rtc_uid="bot"),
        with_properties(start_body(), remote_rtc_uids=["*"], idle_timeout=0),
    ],
    ids=["presets", "pipeline", "mllm", "string-uids", "wildcard"],
)
async def test_what_provides_an_llm_and_a_tts_or_allows_other_uids(
    emulator: RunningEmulator, body: dict[str, Any]
) -> None:
    """Presets, a pipeline or an MLLM stand in for llm and tts; string UIDs when enabled."""
    status, reply = await join(emulator, body)
    assert status == 200, reply


async def test_a_call_without_a_pipeline_needs_the_full_join_properties(
    emulator: RunningEmulator,
) -> None:
    """Telephony shape: 422 `unprocessable_content`; with `pipeline_id` the RTC fields do."""
    bare = without(call_body(), "llm", "tts")
    status, reply = await emulator.call("POST", f"{PROJECT}/call", json=bare)
    assert (status, reply["error_type"]) == (422, "unprocessable_content")
    status, _ = await emulator.call("POST", f"{PROJECT}/call", json=bare | {"pipeline_id": "p"})
    assert status == 200


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        (basic_auth("anyone", "any-secret"), 200),
        (basic_auth("anyone", ""), 401),
        ("Basic not-base64!", 401),
        ("Bearer abc", 401),
        ("agora token={token}", 200),
        ("agora token={other_apps_token}", 401),
        ("agora token=007not-a-token", 401),
    ],
    ids=[
        "none",
        "basic",
        "basic-without-secret",
        "basic-garbled",
        "other-scheme",
        "token",
        "token-of-another-app",
        "garbled-token",
    ],
)
async def test_without_configured_credentials_well_formed_ones_are_required(
    authorization: str | None, status: int
) -> None:
    """Any Basic pair or a token of the path's App ID passes; nothing, or junk, is 401."""
    if authorization:
        authorization = authorization.format(token=token(), other_apps_token=token("f" * 32))
    headers = {"Authorization": authorization} if authorization else {}
    async with running_emulator(EmulatorConfig()) as emulator:
        path = f"/v2/projects/{TOKEN_APP}/agents"
        assert (await emulator.call("GET", path, auth=False, headers=headers))[0] == status


async def test_an_expired_token_is_refused() -> None:
    """A token is refused once its expiry (one hour here) has passed."""
    headers = {"Authorization": f"agora token={token()}"}
    later = EmulatorConfig()
    async with running_emulator(later, clock=lambda: time.time() + 3601) as emulator:
        path = f"/v2/projects/{TOKEN_APP}/agents"
        assert (await emulator.call("GET", path, auth=False, headers=headers))[0] == 401


async def test_a_configured_certificate_checks_the_tokens_signature() -> None:
    """With the App Certificate known, only tokens signed with it pass."""
    config = EmulatorConfig(app_certificates={TOKEN_APP: CERTIFICATE})
    async with running_emulator(config) as emulator:
        path = f"/v2/projects/{TOKEN_APP}/agents"
        for certificate, status in ((CERTIFICATE, 200), ("0" * 32, 401)):
            headers = {"Authorization": f"agora token={token(certificate=certificate)}"}
            assert (await emulator.call("GET", path, auth=False, headers=headers))[0] == status


async def test_without_required_auth_any_request_passes() -> None:
    """`require_auth` off: no credentials at all are accepted."""
    async with running_emulator(EmulatorConfig(rules=Rules(require_auth=False))) as emulator:
        assert (await emulator.call("GET", "/v2/phone-numbers", auth=False))[0] == 200


@pytest.mark.parametrize(
    ("path", "body", "refused", "accepted"),
    [
        (f"{PROJECT}/join", start_body(), (400, "InvalidRequestBody"), 200),
        ("/v2/phone-numbers", number_body(), (422, "unprocessable_content"), 201),
    ],
    ids=["agent", "telephony"],
)
async def test_a_body_must_say_it_is_json(
    path: str, body: dict[str, Any], refused: tuple[int, str], accepted: int
) -> None:
    """A valid body sent as text/plain is refused in the family's shape; with the check off
    it is served."""
    data = msgspec.json.encode(body)
    headers = {"Authorization": basic_auth(), "Content-Type": "text/plain"}
    async with running_emulator(EmulatorConfig()) as emulator:
        status, reply = await emulator.call("POST", path, auth=False, headers=headers, data=data)
        assert (status, reply.get("reason") or reply.get("error_type")) == refused
    async with running_emulator(EmulatorConfig(rules=Rules(check_content_type=False))) as kind:
        status, _ = await kind.call("POST", path, auth=False, headers=headers, data=data)
        assert status == accepted


async def test_a_leave_without_a_body_needs_no_content_type(emulator: RunningEmulator) -> None:
    """The SDK sends leave with no body and no content-type: accepted."""
    _, started = await join(emulator, start_body())
    status, _ = await emulator.call("POST", f"{PROJECT}/agents/{started['agent_id']}/leave")
    assert status == 200


async def test_an_agent_is_starting_for_a_while_by_default(
    emulator: RunningEmulator, clock: FakeClock
) -> None:
    """The join answers STARTING; RUNNING only after the default start delay."""
    _, started = await join(emulator, start_body())
    assert started["status"] == "STARTING"
    clock.advance(DEFAULT_START_DELAY - 0.01)
    assert (await status_of(emulator, started["agent_id"]))["status"] == "STARTING"
    clock.advance(0.01)
    assert (await status_of(emulator, started["agent_id"]))["status"] == "RUNNING"


async def test_an_agent_without_requests_leaves_after_its_idle_timeout(clock: FakeClock) -> None:
    """Requests keep it; 30 s (the default) without any stops it as Agora would, at the moment
    the timeout ran out, and its place under the concurrency limit is free again."""
    config = EmulatorConfig(max_agents_per_app=1)
    async with running_emulator(config, clock=clock) as emulator:
        _, started = await join(emulator, start_body())
        agent_id = started["agent_id"]
        for _ in range(3):
            clock.advance(29)
            assert (await status_of(emulator, agent_id))["status"] == "RUNNING"
        last_request = clock.now
        clock.advance(31)
        agent = await status_of(emulator, agent_id)
        assert (agent["status"], agent["message"]) == ("STOPPED", "Idle for too long")
        assert agent["stop_ts"] == int(last_request + 30)
        assert (await join(emulator, start_body("next")))[0] == 200


@pytest.mark.parametrize(
    ("rules", "body"),
    [
        (Rules(), with_properties(start_body(), idle_timeout=0)),
        (Rules(idle_exit=False), start_body()),
    ],
    ids=["idle-timeout-0", "idle-exit-off"],
)
async def test_an_agent_stays_when_idle_exits_do_not_apply(
    clock: FakeClock, rules: Rules, body: dict[str, Any]
) -> None:
    """`idle_timeout: 0` disables the exit, as does the switch."""
    async with running_emulator(EmulatorConfig(rules=rules), clock=clock) as emulator:
        _, started = await join(emulator, body)
        clock.advance(3600)
        assert (await status_of(emulator, started["agent_id"]))["status"] == "RUNNING"


async def test_agents_fail_on_their_own_at_the_configured_rate(clock: FakeClock) -> None:
    """With a failure rate of 1 an agent is STARTING, then FAILED when it would have run."""
    config = EmulatorConfig(rules=Rules(agent_failure_rate=1.0))
    async with running_emulator(config, clock=clock) as emulator:
        _, started = await join(emulator, start_body())
        assert (await status_of(emulator, started["agent_id"]))["status"] == "STARTING"
        clock.advance(DEFAULT_START_DELAY)
        agent = await status_of(emulator, started["agent_id"])
        assert (agent["status"], agent["message"]) == ("FAILED", "RTC connection error")


@pytest.mark.parametrize(("reuse", "status"), [("after_stop", 200), ("never", 409)])
async def test_the_name_rule_decides_whether_a_stopped_agents_name_is_free(
    clock: FakeClock, reuse: str, status: int
) -> None:
    """After the agent has STOPPED: a new join under its name, allowed or 409 for ever."""
    config = EmulatorConfig(rules=Rules(name_reuse=reuse))  # type: ignore[arg-type]
    async with running_emulator(config, clock=clock) as emulator:
        _, started = await join(emulator, start_body("bot"))
        await emulator.call("POST", f"{PROJECT}/agents/{started['agent_id']}/leave")
        clock.advance(DEFAULT_STOP_DELAY + 3600)
        answer, reply = await join(emulator, start_body("bot"))
        assert answer == status, reply


async def test_agent_get_can_leave_the_name_out(emulator: RunningEmulator) -> None:
    """The SDK's model has no `name`: with the switch off the emulator does not send it."""
    config = EmulatorConfig(rules=Rules(name_in_get=False))
    async with running_emulator(config) as quiet:
        _, started = await quiet.call("POST", f"{PROJECT}/join", json=start_body())
        agent = await status_of(quiet, started["agent_id"])
    assert "name" not in agent
    _, started = await join(emulator, start_body())
    assert (await status_of(emulator, started["agent_id"]))["name"] == "agent-1"


@pytest.mark.parametrize(
    ("rules", "rings", "message"),
    [
        (Rules(busy_numbers=frozenset({"+19876543210"})), 1.0, "Callee busy"),
        (Rules(unanswered_numbers=frozenset({"+19876543210"})), 30.0, "No answer"),
    ],
    ids=["busy", "no-answer"],
)
async def test_a_call_that_is_not_answered_fails_with_its_agent(
    clock: FakeClock, rules: Rules, rings: float, message: str
) -> None:
    """The call rings, then ends `failed`; its agent ends FAILED with the reason."""
    async with running_emulator(EmulatorConfig(rules=rules), clock=clock) as emulator:
        _, created = await emulator.call("POST", f"{PROJECT}/call", json=call_body())
        call_path = f"{PROJECT}/calls/{created['agent_id']}"
        clock.advance(rings - 0.01)
        assert (await emulator.call("GET", call_path))[1]["state"] == "ringing"
        clock.advance(0.01)
        _, call = await emulator.call("GET", call_path)
        assert (call["state"], call["reason"]) == ("hangup", "failed")
        agent = await status_of(emulator, created["agent_id"])
        assert (agent["status"], agent["message"]) == ("FAILED", message)


async def test_an_inbound_call_to_an_imported_number_is_answered_by_its_agent(
    emulator: RunningEmulator,
) -> None:
    """The admin endpoint plays a caller: the call is listed as inbound, already answered."""
    await emulator.call("POST", "/v2/phone-numbers", json=number_body("+15550100200"))
    url = f"{emulator.origin}/_emulator/apps/{APP_ID}/calls/inbound"
    dialled = {"to_number": "+15550100200", "from_number": "+15557654321"}
    async with emulator.session.post(url, json=dialled) as reply:
        assert reply.status == 200
        agent_id = (await reply.json())["agent_id"]
    _, inbound = await emulator.call("GET", f"{PROJECT}/call", params={"type": "inbound"})
    [call] = inbound["data"]["list"]
    assert (call["agent_id"], call["type"], call["state"]) == (agent_id, "inbound", "answered")
    async with emulator.session.post(url, json=dialled | {"to_number": "+15550000001"}) as reply:
        assert reply.status == 404  # a number that was never imported


async def test_an_error_fault_may_perform_the_operation_first(emulator: RunningEmulator) -> None:
    """`execute`: the agent is created, yet the answer is the injected 502."""
    rule = FaultRule(operation="agent.start", status=502, execute=True, count=1)
    emulator.faults.replace(FaultSettings(rules=[rule]))
    assert (await join(emulator, start_body("bot")))[0] == 502
    assert (await join(emulator, start_body("bot")))[1]["reason"] == "TaskConflict"


async def test_a_garble_fault_performs_and_answers_text(emulator: RunningEmulator) -> None:
    """The operation runs; the 2xx carries the fault's text instead of JSON."""
    rule = FaultRule(action="garble", operation="agent.start", body="<html>ok</html>", count=1)
    emulator.faults.replace(FaultSettings(rules=[rule]))
    url = f"{emulator.api_url}{PROJECT}/join"
    headers = {"Authorization": basic_auth()}
    async with emulator.session.post(url, json=start_body(), headers=headers) as reply:
        assert (reply.status, await reply.text()) == (200, "<html>ok</html>")
    assert emulator.state.agent_count() == 1
