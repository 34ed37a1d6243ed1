"""The emulated telephony and phone-number endpoints, and authentication."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emulator.harness import (
    APP_ID,
    LLM,
    TTS,
    FakeClock,
    RunningEmulator,
    basic_auth,
    running_emulator,
    start_body,
)
from worker.emulator.config import EmulatorConfig
from worker.emulator.faults import FaultRule, FaultSettings
from worker.emulator.rules import Rules
from worker.emulator.state import DEFAULT_START_DELAY, DEFAULT_STOP_DELAY

PROJECT = f"/v2/projects/{APP_ID}"


def call_body(name: str = "support-call", to: str = "+19876543210") -> dict[str, Any]:
    """A valid outbound-call body."""
    return {
        "name": name,
        "sip": {
            "to_number": to,
            "from_number": "+11234567890",
            "rtc_uid": "100",
            "rtc_token": "sip-token",
        },
        "properties": {
            "channel": "call-room",
            "token": "t",
            "agent_rtc_uid": "111",
            "remote_rtc_uids": ["100"],
            "llm": LLM,
            "tts": TTS,
        },
    }


def number_body(number: str = "+19876543210") -> dict[str, Any]:
    """A valid phone-number import body."""
    return {
        "provider": "byo",
        "phone_number": number,
        "label": "Sales",
        "inbound_config": {"allowed_addresses": ["112.126.15.64/27"]},
        "outbound_config": {"address": "sip.example.com", "transport": "tls"},
    }


async def test_call_lifecycle(emulator: RunningEmulator, clock: FakeClock) -> None:
    """A call creates an agent, rings, is answered, read, hangs up once, then hangup is 404."""
    status, created = await emulator.call("POST", f"{PROJECT}/call", json=call_body())
    assert status == 200
    agent_id = created["agent_id"]
    created_at = int(clock.now)
    _, call = await emulator.call("GET", f"{PROJECT}/calls/{agent_id}")
    assert call["state"] == "ringing"
    clock.advance(max(Rules().ring_seconds, DEFAULT_START_DELAY))
    _, call = await emulator.call("GET", f"{PROJECT}/calls/{agent_id}")
    assert call == {
        "to_number": "+19876543210",
        "from_number": "+11234567890",
        "pipeline_id": None,
        "type": "outbound",
        "agent_id": agent_id,
        "channel": "call-room",
        "create_ts": created_at,
        "state": "answered",
        "stop_ts": 0,
        "reason": "",
    }
    _, agent = await emulator.call("GET", f"{PROJECT}/agents/{agent_id}")
    assert agent["status"] == "RUNNING"
    assert await emulator.call("POST", f"{PROJECT}/calls/{agent_id}/hangup") == (200, {})
    _, ended = await emulator.call("GET", f"{PROJECT}/calls/{agent_id}")
    assert (ended["state"], ended["reason"]) == ("hangup", "request")
    _, agent = await emulator.call("GET", f"{PROJECT}/agents/{agent_id}")
    assert agent["status"] == "STOPPING"
    clock.advance(DEFAULT_STOP_DELAY)
    _, agent = await emulator.call("GET", f"{PROJECT}/agents/{agent_id}")
    assert agent["status"] == "STOPPED"
    status, reply = await emulator.call("POST", f"{PROJECT}/calls/{agent_id}/hangup")
    assert (status, reply["error_type"]) == (404, "not_found")


async def test_call_list_filters_by_number_and_pages(emulator: RunningEmulator) -> None:
    """The call list matches caller or callee and pages with a cursor."""
    first = (await emulator.call("POST", f"{PROJECT}/call", json=call_body("a")))[1]["agent_id"]
    second_body = call_body("b", to="+15550000000")
    second = (await emulator.call("POST", f"{PROJECT}/call", json=second_body))[1]["agent_id"]
    await emulator.call("POST", f"{PROJECT}/join", json=start_body())  # not a call
    _, listed = await emulator.call("GET", f"{PROJECT}/call", params={"limit": "1"})
    assert [c["agent_id"] for c in listed["data"]["list"]] == [first]
    assert listed["meta"] == {"cursor": second, "total": 2}
    _, by_number = await emulator.call("GET", f"{PROJECT}/call", params={"number": "+15550000000"})
    assert [c["agent_id"] for c in by_number["data"]["list"]] == [second]
    _, inbound = await emulator.call("GET", f"{PROJECT}/call", params={"type": "inbound"})
    assert inbound["data"]["list"] == []


async def test_call_validation_accepts_the_older_sip_field_names(
    emulator: RunningEmulator,
) -> None:
    """`sip_rtc_uid`/`sip_rtc_token` (older docs) are accepted; a bad number is 400."""
    body = call_body()
    body["sip"] = {
        "to_number": "+19876543210",
        "from_number": "+11234567890",
        "sip_rtc_uid": "100",
        "sip_rtc_token": "t",
    }
    assert (await emulator.call("POST", f"{PROJECT}/call", json=body))[0] == 200
    body = call_body("other")
    body["sip"]["to_number"] = "0044"
    status, reply = await emulator.call("POST", f"{PROJECT}/call", json=body)
    assert (status, reply["error_type"]) == (400, "invalid_phone_format")


async def test_phone_number_crud(emulator: RunningEmulator) -> None:
    """Add answers 201, duplicates 409, update replaces configs, delete 204, then 404."""
    status, added = await emulator.call("POST", "/v2/phone-numbers", json=number_body())
    assert status == 201
    assert added == {
        "provider": "byo",
        "phone_number": "+19876543210",
        "label": "Sales",
        "inbound": True,
        "outbound": True,
        "associated_pipeline": None,
    }
    status, reply = await emulator.call("POST", "/v2/phone-numbers", json=number_body())
    assert (status, reply["error_type"]) == (409, "phone_number_exists")
    path = "/v2/phone-numbers/+19876543210"
    update = {"inbound_config": {"pipeline_id": "p1"}, "outbound_config": None}
    status, updated = await emulator.call("PATCH", path, json=update)
    assert status == 200
    assert updated["associated_pipeline"] == {"pipeline_id": "p1", "pipeline_name": "p1"}
    assert updated["outbound_config"] is None
    assert (await emulator.call("GET", "/v2/phone-numbers"))[1] == [updated]
    assert await emulator.call("GET", path) == (200, updated)
    assert await emulator.call("DELETE", path) == (204, None)
    status, reply = await emulator.call("DELETE", path)
    assert (status, reply["error_type"]) == (404, "not_found")
    assert (await emulator.call("GET", path))[0] == 404


@pytest.mark.parametrize(
    ("change", "status", "error_type"),
    [
        ({"phone_number": "12345"}, 400, "invalid_phone_format"),
        ({"provider": "carrier-pigeon"}, 422, "unprocessable_content"),
        ({"label": None}, 422, "unprocessable_content"),
        ({"label": ""}, 422, "unprocessable_content"),
        ({"inbound_config": None}, 422, "unprocessable_content"),
        ({"outbound_config": None}, 422, "unprocessable_content"),
    ],
)
async def test_invalid_number_imports_get_the_documented_codes(
    emulator: RunningEmulator, change: dict[str, Any], status: int, error_type: str
) -> None:
    """400 `invalid_phone_format` for the number; the provider, a non-empty label and both
    config objects are validated with 422 `unprocessable_content`."""
    body = {key: value for key, value in (number_body() | change).items() if value is not None}
    answer, reply = await emulator.call("POST", "/v2/phone-numbers", json=body)
    assert (answer, reply["error_type"]) == (status, error_type)


async def test_invalid_call_bodies_are_422_unprocessable_content(
    emulator: RunningEmulator,
) -> None:
    """The telephony error shape and code for validation errors; `remote_rtc_uids` optional."""
    body = call_body()
    del body["properties"]["remote_rtc_uids"]
    assert (await emulator.call("POST", f"{PROJECT}/call", json=body))[0] == 200
    body = call_body("other")
    del body["properties"]["token"]
    status, reply = await emulator.call("POST", f"{PROJECT}/call", json=body)
    assert (status, reply["error_type"]) == (422, "unprocessable_content")


async def test_an_unknown_call_list_cursor_is_refused(emulator: RunningEmulator) -> None:
    """As for agents: not page 1 again."""
    params = {"cursor": "NOT-A-CALL"}
    status, reply = await emulator.call("GET", f"{PROJECT}/call", params=params)
    assert (status, reply["error_type"]) == (422, "unprocessable_content")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v2/phone-numbers", {"description": "injected fault"}),
        (f"{PROJECT}/agents", {"detail": "injected fault"}),
    ],
)
async def test_rate_limiting_carries_no_undocumented_code(
    emulator: RunningEmulator, path: str, body: dict[str, str]
) -> None:
    """429 has no documented `reason` or `error_type`: the body has the text alone."""
    emulator.faults.replace(FaultSettings(rules=[FaultRule(status=429, count=1)]))
    assert await emulator.call("GET", path) == (429, body)


async def test_credentials_are_checked_when_configured(emulator: RunningEmulator) -> None:
    """Wrong or missing credentials get 401 in the endpoint family's error shape."""
    status, reply = await emulator.call("GET", "/v2/phone-numbers", auth=False)
    assert (status, reply["error_type"]) == (401, "unauthorized")
    bad = {"Authorization": basic_auth(secret="wrong")}
    status, reply = await emulator.call("GET", f"{PROJECT}/agents", auth=False, headers=bad)
    assert (status, reply) == (401, {"detail": "authentication failed"})


async def test_token_auth_is_accepted_when_configured() -> None:
    """`agora token=<token>` is accepted when the emulator knows the token."""
    async with running_emulator(EmulatorConfig(auth_token="tok")) as emulator:
        good = {"Authorization": "agora token=tok"}
        assert (await emulator.call("GET", "/v2/phone-numbers", auth=False, headers=good))[0] == 200
        bad = {"Authorization": "agora token=other"}
        assert (await emulator.call("GET", "/v2/phone-numbers", auth=False, headers=bad))[0] == 401
