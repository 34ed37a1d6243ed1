"""The emulated agent endpoints: lifecycle, conflicts, limits, listing, history and turns."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emulator.harness import APP_ID, FakeClock, RunningEmulator, running_emulator, start_body
from worker.emulator.config import EmulatorConfig
from worker.emulator.rules import Rules
from worker.emulator.state import DEFAULT_START_DELAY, DEFAULT_STOP_DELAY

PROJECT = f"/v2/projects/{APP_ID}"


async def start(emulator: RunningEmulator, **kwargs: Any) -> str:
    status, body = await emulator.call("POST", f"{PROJECT}/join", json=start_body(**kwargs))
    assert status == 200, body
    agent_id: str = body["agent_id"]
    return agent_id


async def test_agent_goes_from_starting_to_running_after_the_start_delay() -> None:
    """With a start delay, join answers STARTING and get reports RUNNING once it has passed."""
    clock = FakeClock()
    config = EmulatorConfig(customer_id="customer", customer_secret="secret", start_delay=2.0)
    async with running_emulator(config, clock=clock) as emulator:
        status, body = await emulator.call("POST", f"{PROJECT}/join", json=start_body())
        assert (status, body["status"], body["create_ts"]) == (200, "STARTING", int(clock.now))
        agent = f"{PROJECT}/agents/{body['agent_id']}"
        assert (await emulator.call("GET", agent))[1]["status"] == "STARTING"
        clock.advance(2.0)
        assert (await emulator.call("GET", agent))[1]["status"] == "RUNNING"


async def test_leave_stops_the_agent_and_a_second_leave_is_404(
    emulator: RunningEmulator, clock: FakeClock
) -> None:
    """Leave answers `{}`; the agent is STOPPING for the default stop delay, then STOPPED; a
    second leave, while stopping or after, is 404 TaskNotFound."""
    agent = f"{PROJECT}/agents/{await start(emulator)}"
    assert await emulator.call("POST", f"{agent}/leave") == (200, {})
    assert (await emulator.call("GET", agent))[1]["status"] == "STOPPING"
    status, body = await emulator.call("POST", f"{agent}/leave")
    assert (status, body["reason"]) == (404, "TaskNotFound")
    clock.advance(DEFAULT_STOP_DELAY)
    status, body = await emulator.call("GET", agent)
    assert (status, body["status"], body["message"]) == (200, "STOPPED", "OK")
    status, body = await emulator.call("POST", f"{agent}/leave")
    assert (status, body["reason"]) == (404, "TaskNotFound")


async def test_stop_delay_reports_stopping_first(clock: FakeClock) -> None:
    """With a stop delay the agent is STOPPING until the delay has passed."""
    config = EmulatorConfig(stop_delay=1.0)
    async with running_emulator(config, clock=clock) as emulator:
        agent = f"{PROJECT}/agents/{await start(emulator)}"
        await emulator.call("POST", f"{agent}/leave")
        assert (await emulator.call("GET", agent))[1]["status"] == "STOPPING"
        clock.advance(1.0)
        assert (await emulator.call("GET", agent))[1]["status"] == "STOPPED"


async def test_a_name_is_held_until_its_agent_has_stopped(
    emulator: RunningEmulator, clock: FakeClock
) -> None:
    """A name held by a live or stopping agent gets 409 TaskConflict; once STOPPED it is free."""
    agent_id = await start(emulator, name="alice")
    status, body = await emulator.call("POST", f"{PROJECT}/join", json=start_body(name="alice"))
    assert (status, body["reason"]) == (409, "TaskConflict")
    await emulator.call("POST", f"{PROJECT}/agents/{agent_id}/leave")
    status, body = await emulator.call("POST", f"{PROJECT}/join", json=start_body(name="alice"))
    assert (status, body["reason"]) == (409, "TaskConflict")
    clock.advance(DEFAULT_STOP_DELAY)
    assert await start(emulator, name="alice") != agent_id


async def test_concurrency_limit_is_422_per_app_id(clock: FakeClock) -> None:
    """Past `max_agents_per_app` live agents a join gets 422; other App IDs are not affected."""
    async with running_emulator(EmulatorConfig(max_agents_per_app=2), clock=clock) as emulator:
        first = await start(emulator, name="a")
        await start(emulator, name="b")
        status, body = await emulator.call("POST", f"{PROJECT}/join", json=start_body(name="c"))
        assert (status, body["reason"]) == (422, "ConcurrencyLimitExceeded")
        status, _ = await emulator.call("POST", "/v2/projects/other/join", json=start_body())
        assert status == 200
        await emulator.call("POST", f"{PROJECT}/agents/{first}/leave")
        assert await start(emulator, name="c")


async def test_unknown_agents_are_404_everywhere(emulator: RunningEmulator) -> None:
    """Every agent endpoint answers 404 TaskNotFound for an id it never issued."""
    agent = f"{PROJECT}/agents/NOPE"
    calls: list[tuple[str, str, Any]] = [
        ("GET", agent, None),
        ("GET", f"{agent}/history", None),
        ("GET", f"{agent}/turns", None),
        ("POST", f"{agent}/leave", None),
        ("POST", f"{agent}/update", {"properties": {}}),
        ("POST", f"{agent}/speak", {"text": "hi"}),
        ("POST", f"{agent}/interrupt", None),
        ("POST", f"{agent}/think", {"text": "hi"}),
    ]
    for method, path, body in calls:
        status, reply = await emulator.call(method, path, json=body)
        assert (status, reply["reason"]) == (404, "TaskNotFound"), path


async def test_actions_on_a_stopped_agent_are_404(emulator: RunningEmulator) -> None:
    """Speak, think, interrupt, update and history refuse an agent that has left."""
    agent = f"{PROJECT}/agents/{await start(emulator)}"
    await emulator.call("POST", f"{agent}/leave")
    for path, body in [("speak", {"text": "x"}), ("think", {"text": "x"}), ("update", {})]:
        assert (await emulator.call("POST", f"{agent}/{path}", json=body))[0] == 404
    assert (await emulator.call("POST", f"{agent}/interrupt"))[0] == 404
    assert (await emulator.call("GET", f"{agent}/history"))[0] == 404


@pytest.mark.parametrize(
    ("body", "reason", "detail"),
    [
        ({"properties": {}}, "MissingRequiredField", "name is required"),
        ({"name": "x"}, "MissingRequiredField", "properties is required"),
        ({"name": 5, "properties": {}}, "InvalidFieldValue", "name must be a non-empty string"),
        (
            {"name": "x", "properties": {"channel": "c", "agent_rtc_uid": "1", "token": ""}},
            "MissingRequiredField",
            "properties.remote_rtc_uids is required",
        ),
        ([1, 2], "InvalidRequestBody", "request body must be a JSON object"),
    ],
)
async def test_invalid_join_bodies_are_400_with_a_reason(
    emulator: RunningEmulator, body: Any, reason: str, detail: str
) -> None:
    """Join validates what the API documents as required and says which field is wrong."""
    status, reply = await emulator.call("POST", f"{PROJECT}/join", json=body)
    assert (status, reply) == (400, {"detail": detail, "reason": reason})


async def test_a_body_that_is_not_json_is_400(emulator: RunningEmulator) -> None:
    """Bytes that are not JSON get 400 InvalidRequestBody."""
    status, reply = await emulator.call("POST", f"{PROJECT}/join", data=b"{nope")
    assert (status, reply["reason"]) == (400, "InvalidRequestBody")


async def test_speak_enforces_the_512_byte_limit(emulator: RunningEmulator) -> None:
    """Speak accepts 512 bytes of UTF-8 and refuses 513."""
    agent = f"{PROJECT}/agents/{await start(emulator)}"
    assert (await emulator.call("POST", f"{agent}/speak", json={"text": "é" * 256}))[0] == 200
    status, reply = await emulator.call("POST", f"{agent}/speak", json={"text": "é" * 256 + "x"})
    assert (status, reply["reason"]) == (400, "InvalidFieldValue")


async def test_speak_think_and_interrupt_answer_the_documented_shape(
    emulator: RunningEmulator, clock: FakeClock
) -> None:
    """The three actions answer agent_id, channel and start_ts; interrupt accepts no body."""
    agent_id = await start(emulator)
    agent = f"{PROJECT}/agents/{agent_id}"
    expected = {"agent_id": agent_id, "channel": "room-1", "start_ts": int(clock.now)}
    speak = {"text": "Hello", "priority": "APPEND", "interruptable": False}
    assert await emulator.call("POST", f"{agent}/speak", json=speak) == (200, expected)
    think = {"text": "The user clicked buy", "on_listening_action": "inject"}
    assert await emulator.call("POST", f"{agent}/think", json=think) == (200, expected)
    assert await emulator.call("POST", f"{agent}/interrupt") == (200, expected)
    assert await emulator.call("POST", f"{agent}/interrupt", json={}) == (200, expected)


async def test_history_and_turns_record_speak_and_think(
    emulator: RunningEmulator, clock: FakeClock
) -> None:
    """Speak adds an assistant entry and a turn, think a user entry; turns page by page_size;
    the history is there once the agent runs."""
    agent_id = await start(emulator)
    agent = f"{PROJECT}/agents/{agent_id}"
    status, reply = await emulator.call("GET", f"{agent}/history")
    assert (status, reply["detail"]) == (404, f"agent {agent_id} is not running")
    clock.advance(DEFAULT_START_DELAY)
    await emulator.call("POST", f"{agent}/think", json={"text": "user said"})
    for n in range(12):
        await emulator.call("POST", f"{agent}/speak", json={"text": f"line {n}"})
    _, history = await emulator.call("GET", f"{agent}/history")
    assert history["status"] == "RUNNING"
    assert history["contents"][0] == {"role": "user", "content": "user said"}
    assert history["contents"][-1] == {"role": "assistant", "content": "line 11"}
    _, page = await emulator.call("GET", f"{agent}/turns", params={"page_size": "10"})
    assert page["total_turn_count"] == 12
    assert page["pagination"] == {"page_index": 1, "total_pages": 2, "is_last_page": False}
    assert [t["turn_id"] for t in page["turns"]] == list(range(1, 11))
    _, last = await emulator.call(
        "GET", f"{agent}/turns", params={"page_index": "2", "page_size": "10"}
    )
    assert last["pagination"]["is_last_page"] is True
    assert last["turns"][0]["start"]["type"] == "api_speak"
    status, reply = await emulator.call("GET", f"{agent}/turns", params={"page_size": "5"})
    assert (status, reply["detail"]) == (400, "page_size must be in [10, 200]")


async def test_list_filters_by_state_and_channel_and_pages_with_a_cursor(
    emulator: RunningEmulator, clock: FakeClock
) -> None:
    """The list defaults to RUNNING agents, filters by channel and `state`, and pages by cursor."""
    ids = [
        await start(emulator, name=f"n{i}", channel="even" if i % 2 == 0 else "odd")
        for i in range(5)
    ]
    await emulator.call("POST", f"{PROJECT}/agents/{ids[0]}/leave")
    _, stopping = await emulator.call("GET", f"{PROJECT}/agents", params={"state": "3"})
    assert [item["agent_id"] for item in stopping["data"]["list"]] == [ids[0]]
    clock.advance(DEFAULT_STOP_DELAY)
    _, running = await emulator.call("GET", f"{PROJECT}/agents")
    assert [item["agent_id"] for item in running["data"]["list"]] == ids[1:]
    assert running["meta"] == {"cursor": "", "total": 4}
    _, even = await emulator.call("GET", f"{PROJECT}/agents", params={"channel": "even"})
    assert [item["agent_id"] for item in even["data"]["list"]] == [ids[2], ids[4]]
    _, stopped = await emulator.call("GET", f"{PROJECT}/agents", params={"state": "4"})
    assert [item["status"] for item in stopped["data"]["list"]] == ["STOPPED"]
    _, page = await emulator.call("GET", f"{PROJECT}/agents", params={"state": "2,4", "limit": "2"})
    assert page["data"]["count"] == 2
    assert page["meta"]["cursor"] == ids[2]
    _, rest = await emulator.call(
        "GET", f"{PROJECT}/agents", params={"state": "2,4", "limit": "2", "cursor": ids[2]}
    )
    assert [item["agent_id"] for item in rest["data"]["list"]] == ids[2:4]


async def test_a_cursor_stays_a_position_when_its_agent_changes_state(
    emulator: RunningEmulator, clock: FakeClock
) -> None:
    """The next page starts at the cursor's agent even if it no longer matches the filter."""
    ids = [await start(emulator, name=f"n{i}") for i in range(4)]
    clock.advance(DEFAULT_START_DELAY)
    _, page = await emulator.call("GET", f"{PROJECT}/agents", params={"limit": "2"})
    assert page["meta"]["cursor"] == ids[2]
    await emulator.call("POST", f"{PROJECT}/agents/{ids[2]}/leave")
    params = {"limit": "2", "cursor": ids[2]}
    _, rest = await emulator.call("GET", f"{PROJECT}/agents", params=params)
    assert [item["agent_id"] for item in rest["data"]["list"]] == [ids[3]]


@pytest.mark.parametrize("cursor", ["NOT-AN-AGENT", "forgotten"])
async def test_an_unknown_or_stale_cursor_is_refused(cursor: str, clock: FakeClock) -> None:
    """A cursor that names no agent of the app (made up, or forgotten since) is a 400, not
    page 1 again: a pager would otherwise loop forever over the first page."""
    async with running_emulator(EmulatorConfig(retain_stopped=1), clock=clock) as emulator:
        if cursor == "forgotten":
            ids = [await start(emulator, name=f"n{i}") for i in range(2)]
            for agent_id in ids:
                await emulator.call("POST", f"{PROJECT}/agents/{agent_id}/leave")
            cursor = ids[0]
        params = {"state": "4", "cursor": cursor}
        status, reply = await emulator.call("GET", f"{PROJECT}/agents", params=params)
    assert (status, reply["reason"]) == (400, "InvalidFieldValue")
    assert "cursor" in reply["detail"]


async def test_speak_is_refused_for_an_mllm_agent(emulator: RunningEmulator) -> None:
    """The documentation: the speak API is not supported with `mllm`."""
    body = start_body(name="realtime")
    body["properties"]["mllm"] = {"enable": True, "vendor": "openai"}
    _, started = await emulator.call("POST", f"{PROJECT}/join", json=body)
    agent = f"{PROJECT}/agents/{started['agent_id']}"
    status, reply = await emulator.call("POST", f"{agent}/speak", json={"text": "Hello"})
    assert (status, reply["reason"]) == (400, "NotImplemented")
    assert (await emulator.call("POST", f"{agent}/think", json={"text": "hi"}))[0] == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("speak", {"text": ""}),
        ("think", {"text": ""}),
        ("think", {"text": "hi", "metadata": {"attempt": 2}}),
    ],
)
async def test_empty_texts_and_metadata_that_is_not_text_are_400(
    emulator: RunningEmulator, path: str, body: dict[str, Any]
) -> None:
    """As the contract refuses them: empty `text`, `metadata` values other than strings."""
    agent = f"{PROJECT}/agents/{await start(emulator)}"
    status, reply = await emulator.call("POST", f"{agent}/{path}", json=body)
    assert (status, reply["reason"]) == (400, "InvalidFieldValue")


async def test_list_time_window_defaults_to_the_last_two_hours(clock: FakeClock) -> None:
    """Agents started before `from_time` (default: two hours ago) are not listed (agents that
    stay hours without a request: idle exits are off)."""
    config = EmulatorConfig(rules=Rules(idle_exit=False))
    async with running_emulator(config, clock=clock) as emulator:
        old = await start(emulator, name="old")
        clock.advance(3 * 3600)
        new = await start(emulator, name="new")
        clock.advance(DEFAULT_START_DELAY)
        _, recent = await emulator.call("GET", f"{PROJECT}/agents")
        assert [item["agent_id"] for item in recent["data"]["list"]] == [new]
        params = {"from_time": str(clock.now - 4 * 3600)}
        _, everything = await emulator.call("GET", f"{PROJECT}/agents", params=params)
        assert [item["agent_id"] for item in everything["data"]["list"]] == [old, new]


async def test_agents_of_another_app_id_are_invisible(emulator: RunningEmulator) -> None:
    """An agent id is only valid under the App ID that started it."""
    agent_id = await start(emulator)
    status, _ = await emulator.call("GET", f"/v2/projects/other/agents/{agent_id}")
    assert status == 404


async def test_the_cn_base_path_serves_the_same_api(emulator: RunningEmulator) -> None:
    """`/cn/api/conversational-ai-agent` reaches the same operations (the SDK's CN area)."""
    url = f"{emulator.origin}/cn/api/conversational-ai-agent{PROJECT}/join"
    headers = {"Authorization": "Basic Y3VzdG9tZXI6c2VjcmV0"}
    async with emulator.session.post(url, json=start_body(), headers=headers) as response:
        assert response.status == 200


async def test_stopped_agents_are_forgotten_past_the_retention(clock: FakeClock) -> None:
    """Only the newest `retain_stopped` stopped agents are kept; older ones become 404."""
    async with running_emulator(EmulatorConfig(retain_stopped=2), clock=clock) as emulator:
        ids = [await start(emulator, name=f"n{i}") for i in range(3)]
        for agent_id in ids:
            await emulator.call("POST", f"{PROJECT}/agents/{agent_id}/leave")
        statuses = [(await emulator.call("GET", f"{PROJECT}/agents/{a}"))[0] for a in ids]
        assert statuses == [404, 200, 200]
        assert emulator.state.agent_count() == 2
