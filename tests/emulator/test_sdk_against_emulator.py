"""The official SDK (`agora-agents` 2.12) works against the emulator: all 19 operations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.emulator.harness import (
    APP_ID,
    CUSTOMER_ID,
    CUSTOMER_SECRET,
    LLM,
    TTS,
    RunningEmulator,
    running_emulator,
    start_body,
)
from worker.emulator.config import EmulatorConfig
from worker.emulator.rules import Rules

# Importing the SDK warns about its pydantic-v1-style models; nothing else may warn.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Valid config keys have changed:UserWarning"),
    pytest.mark.filterwarnings("ignore:Support for class-based `config`:DeprecationWarning"),
]

CALL = {
    "name": "support-call",
    "sip": {
        "to_number": "+19876543210",
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


def make_sdk(http: httpx.AsyncClient, secret: str = CUSTOMER_SECRET) -> Any:
    """The SDK's pool client with Basic auth; the base URL comes from the environment."""
    from agora_agent.core.domain import Area  # noqa: PLC0415 - the SDK is a test-only dependency
    from agora_agent.pool_client import AsyncAgora  # noqa: PLC0415

    return AsyncAgora(
        area=Area.US,
        app_id=APP_ID,
        app_certificate="0" * 32,
        customer_id=CUSTOMER_ID,
        customer_secret=secret,
        httpx_client=http,
    )


@pytest.fixture
async def sdk_and_emulator(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[Any, RunningEmulator]]:
    """The SDK's pool client (Basic auth), routed to an emulator allowing two agents per app
    whose agents run and whose calls are answered at once (what the SDK reads is tested here,
    not the timing)."""
    config = EmulatorConfig(
        customer_id=CUSTOMER_ID,
        customer_secret=CUSTOMER_SECRET,
        max_agents_per_app=2,
        start_delay=0.0,
        rules=Rules(ring_seconds=0.0),
    )
    async with running_emulator(config) as emulator:
        monkeypatch.setenv("AGORA_AGENTS_API_BASE_URL", emulator.origin)
        async with httpx.AsyncClient(timeout=10) as http:
            yield make_sdk(http), emulator


async def test_all_agent_operations(sdk_and_emulator: tuple[Any, RunningEmulator]) -> None:
    """start, list, get, history, turns, update, speak, interrupt, think and stop succeed."""
    sdk, emulator = sdk_and_emulator
    body = start_body(name="sdk-agent")
    started = await sdk.agents.start(APP_ID, name=body["name"], properties=body["properties"])
    agent_id = started.agent_id
    assert started.status == "RUNNING"
    listed = [item async for item in await sdk.agents.list(APP_ID, state="1,2")]
    assert [item.agent_id for item in listed] == [agent_id]
    got = await sdk.agents.get(APP_ID, agent_id)
    assert (got.status, got.agent_id) == ("RUNNING", agent_id)
    update = {"token": "new-token", "llm": {"params": {"model": "m"}}}
    updated = await sdk.agents.update(APP_ID, agent_id, properties=update)
    assert updated.agent_id == agent_id
    spoken = await sdk.agents.speak(APP_ID, agent_id, text="Hello", priority="INTERRUPT")
    assert (spoken.agent_id, spoken.channel) == (agent_id, "room-1")
    interrupted = await sdk.agents.interrupt(APP_ID, agent_id)
    assert interrupted.agent_id == agent_id
    thought = await sdk.agent_management.agent_think(
        APP_ID, agent_id, text="User clicked buy", on_listening_action="inject"
    )
    assert thought.agent_id == agent_id
    history = await sdk.agents.get_history(APP_ID, agent_id)
    assert [entry.role for entry in history.contents] == ["assistant", "user"]
    turns = await sdk.agents.get_turns(APP_ID, agent_id, page_index=1, page_size=10)
    assert (turns.total_turn_count, turns.pagination.is_last_page) == (1, True)
    assert await sdk.agents.stop(APP_ID, agent_id) is None
    assert (await sdk.agents.get(APP_ID, agent_id)).status == "STOPPING"
    assert [e.operation for e in emulator.log.entries()] == [
        "agent.start",
        "agent.list",
        "agent.get",
        "agent.update",
        "agent.speak",
        "agent.interrupt",
        "agent.think",
        "agent.history",
        "agent.turns",
        "agent.stop",
        "agent.get",
    ]
    assert {e.status for e in emulator.log.entries()} == {200}


async def test_all_telephony_operations(sdk_and_emulator: tuple[Any, RunningEmulator]) -> None:
    """call, list, get and hangup succeed."""
    sdk, _ = sdk_and_emulator
    created = await sdk.telephony.call(APP_ID, **CALL)
    calls = [item async for item in await sdk.telephony.list(APP_ID, type="outbound")]
    assert [call.agent_id for call in calls] == [created.agent_id]
    call = await sdk.telephony.get(APP_ID, created.agent_id)
    assert (call.state, call.to_number) == ("answered", "+19876543210")
    await sdk.telephony.hangup(APP_ID, created.agent_id)
    ended = await sdk.telephony.get(APP_ID, created.agent_id)
    assert (ended.state, ended.reason) == ("hangup", "request")


async def test_all_phone_number_operations(
    sdk_and_emulator: tuple[Any, RunningEmulator],
) -> None:
    """add, list, get, update and delete succeed; the number goes on the path verbatim."""
    sdk, emulator = sdk_and_emulator
    added = await sdk.phone_numbers.add(
        provider="byo",
        phone_number="+19876543210",
        label="Sales",
        inbound_config={"allowed_addresses": ["112.126.15.64/27"]},
        outbound_config={"address": "sip.example.com", "transport": "tls"},
    )
    assert (added.phone_number, added.inbound) == ("+19876543210", True)
    assert [n.phone_number for n in await sdk.phone_numbers.list()] == ["+19876543210"]
    assert (await sdk.phone_numbers.get("+19876543210")).label == "Sales"
    updated = await sdk.phone_numbers.update(
        "+19876543210", inbound_config={"pipeline_id": "p1"}, outbound_config=None
    )
    assert updated.associated_pipeline.pipeline_id == "p1"
    assert await sdk.phone_numbers.delete("+19876543210") is None
    assert await sdk.phone_numbers.list() == []
    assert emulator.log.entries("number.get")[0].path.endswith("/v2/phone-numbers/+19876543210")


async def test_error_paths_reach_the_sdk_as_api_errors(
    sdk_and_emulator: tuple[Any, RunningEmulator],
) -> None:
    """409 on a duplicate name, 422 past the concurrency limit, 404 on a stopped agent."""
    from agora_agent.core.api_error import ApiError  # noqa: PLC0415 - test-only dependency

    sdk, _ = sdk_and_emulator
    first = start_body(name="dup")
    agent = await sdk.agents.start(APP_ID, name="dup", properties=first["properties"])
    with pytest.raises(ApiError) as conflict:
        await sdk.agents.start(APP_ID, name="dup", properties=first["properties"])
    assert (conflict.value.status_code, conflict.value.body["reason"]) == (409, "TaskConflict")
    await sdk.agents.start(APP_ID, name="second", properties=first["properties"])
    with pytest.raises(ApiError) as quota:
        await sdk.agents.start(APP_ID, name="third", properties=first["properties"])
    assert (quota.value.status_code, quota.value.body["reason"]) == (
        422,
        "ConcurrencyLimitExceeded",
    )
    await sdk.agents.stop(APP_ID, agent.agent_id)
    with pytest.raises(ApiError) as gone:
        await sdk.agents.stop(APP_ID, agent.agent_id)
    assert (gone.value.status_code, gone.value.body["reason"]) == (404, "TaskNotFound")
    with pytest.raises(ApiError) as unknown_number:
        await sdk.phone_numbers.get("+15550000000")
    assert unknown_number.value.body == {
        "error_type": "not_found",
        "description": "phone number +15550000000 not found",
    }


async def test_the_sdk_is_refused_with_wrong_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """401 reaches the SDK when its credentials do not match the emulator's."""
    from agora_agent.core.api_error import ApiError  # noqa: PLC0415 - test-only dependency

    async with running_emulator() as emulator:
        monkeypatch.setenv("AGORA_AGENTS_API_BASE_URL", emulator.origin)
        async with httpx.AsyncClient(timeout=10) as http:
            with pytest.raises(ApiError) as refused:
                await make_sdk(http, secret="wrong").phone_numbers.list()
    assert refused.value.status_code == 401
