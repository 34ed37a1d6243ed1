"""Agent lifecycle end to end: the emulator over HTTP, webhooks, the real broker's state topic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from contracts import AgentStateEvent, ResultEvent, decode_agent_state, encode_event
from devtools.workload import agent_properties
from tests.emulator.harness import RunningEmulator, running_emulator
from tests.observability.fakes import notice, signed
from tests.pipeline.harness import (
    APP_ID,
    in_process_worker,
    make_settings,
    produce,
    read_topic,
    wait_for_results,
)
from worker.agents.directory import AgentDirectory
from worker.agents.records import StateRecords
from worker.emulator.config import EmulatorConfig
from worker.kafka.aio import AioKafkaBackend
from worker.pipeline.followers import TopicFollower
from worker.settings import Settings

pytestmark = pytest.mark.kafka

SECRET = "ncs-secret"
WITHIN = 30.0


def start(name: str, command_id: str) -> dict[str, Any]:
    return {
        "command": "agent.start",
        "id": command_id,
        "name": name,
        "properties": agent_properties(name),
    }


def by_id(results: list[ResultEvent]) -> dict[str, ResultEvent]:
    return {result.command_id: result for result in results}


async def state_records(bootstrap: str, topic: str) -> list[tuple[str, str | None]]:
    """Every record of the state topic as (agent id, status or None for a tombstone)."""
    return [
        (
            record.key.decode(),
            decode_agent_state(record.value).status if record.value is not None else None,
        )
        for record in await read_topic(bootstrap, topic)
    ]


async def statuses_of(bootstrap: str, topic: str, agent_id: str) -> list[str | None]:
    return [status for key, status in await state_records(bootstrap, topic) if key == agent_id]


async def poll(condition: Any, what: str, within: float = WITHIN) -> None:
    """Await `condition()` (a coroutine function) until it is true; fail naming `what`."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.2)


async def replayed(settings: Settings) -> AgentDirectory:
    """The directory a worker starting now would rebuild from the state topic."""
    directory = AgentDirectory()
    follower = TopicFollower(
        AioKafkaBackend(settings).topic_reader(settings.topic_state, "replay-check"),
        StateRecords(directory),
    )
    try:
        await follower.load()
    finally:
        await follower.close()
    return directory


@pytest.fixture
async def webhooked(
    kafka_bootstrap: str, topics: dict[str, str]
) -> AsyncIterator[tuple[Settings, RunningEmulator]]:
    """Worker settings and an emulator that sends signed NCS callbacks to that worker."""
    # the emulator's address is known once it runs; the worker's port is needed before
    settings = make_settings(kafka_bootstrap, topics, "http://127.0.0.1", webhook_secret=SECRET)
    url = f"http://127.0.0.1:{settings.http_port}/webhooks/agora"
    # agents join at once: their "joined" callback comes before anything a test does to them
    config = EmulatorConfig(
        max_agents_per_app=100_000, webhook_url=url, webhook_secret=SECRET, start_delay=0.0
    )
    async with running_emulator(config) as emulator:
        yield Settings(**{**settings_dict(settings), "api_base_url": emulator.api_url}), emulator


def settings_dict(settings: Settings) -> dict[str, Any]:
    return {field: getattr(settings, field) for field in settings.__struct_fields__}


async def test_stop_then_start_with_the_same_name_starts_a_new_agent(
    kafka_bootstrap: str, topics: dict[str, str], emulator: RunningEmulator
) -> None:
    """The restart waits for the stopping agent, starts a new one, and every later speak by
    name reaches the new agent; the old agent's records end STOPPED, never back to STOPPING."""
    name = "restart-bot"
    commands = [
        start(name, "first"),
        {"command": "agent.speak", "id": "before", "name": name, "text": "before"},
        {"command": "agent.stop", "id": "stop", "name": name},
        start(name, "again"),
        *(
            {"command": "agent.speak", "id": f"after-{n}", "name": name, "text": f"after {n}"}
            for n in range(3)
        ),
    ]
    await produce(kafka_bootstrap, topics["commands"], commands)
    settings = make_settings(kafka_bootstrap, topics, emulator.api_url)
    async with in_process_worker(settings) as worker:
        results = by_id(
            await wait_for_results(kafka_bootstrap, topics["results"], {c["id"] for c in commands})
        )
        assert {r.outcome for r in results.values()} == {"succeeded"}
        old, new = results["first"].agent_id, results["again"].agent_id
        assert old is not None
        assert new not in (None, old)
        assert results["again"].reconciled is False
        assert worker.directory.resolve(APP_ID, name) == new
    spoken = {r["body"]["text"]: r["path"].split("/")[-2] for r in emulator.requests("agent.speak")}
    assert spoken == {"before": old, "after 0": new, "after 1": new, "after 2": new}
    assert await statuses_of(kafka_bootstrap, topics["state"], old) == [
        "STARTING",
        "STOPPING",
        "STOPPED",
    ]
    assert await statuses_of(kafka_bootstrap, topics["state"], new) == ["STARTING"]


async def test_stopping_an_unknown_id_fails_and_publishes_nothing(
    kafka_bootstrap: str, topics: dict[str, str], emulator: RunningEmulator
) -> None:
    """A typo is not success: failed/not_found, and no state event for an id never seen."""
    commands = [{"command": "agent.stop", "id": "typo", "agent_id": "NO-SUCH-AGENT"}]
    await produce(kafka_bootstrap, topics["commands"], commands)
    settings = make_settings(kafka_bootstrap, topics, emulator.api_url)
    async with in_process_worker(settings):
        [result] = await wait_for_results(kafka_bootstrap, topics["results"], {"typo"})
    assert result.error is not None
    assert (result.outcome, result.error.code, result.already_gone) == (
        "failed",
        "not_found",
        False,
    )
    assert result.error.details == {
        "detail": "agent NO-SUCH-AGENT not found",
        "reason": "TaskNotFound",
    }
    assert await state_records(kafka_bootstrap, topics["state"]) == []


async def test_a_late_webhook_after_the_stop_leaves_the_topic_stopped(
    kafka_bootstrap: str,
    topics: dict[str, str],
    webhooked: tuple[Settings, RunningEmulator],
) -> None:
    """STOPPED comes from the 102 callback; a redelivered "joined" notice (NCS refreshes its
    notifyMs) is superseded, and a racing member's RUNNING that lands last is repaired."""
    settings, _ = webhooked
    state = topics["state"]
    commands = [start("hooked", "start"), {"command": "agent.stop", "id": "stop", "name": "hooked"}]
    await produce(kafka_bootstrap, topics["commands"], commands)
    async with in_process_worker(settings) as worker, aiohttp.ClientSession() as session:
        results = by_id(
            await wait_for_results(kafka_bootstrap, topics["results"], {"start", "stop"})
        )
        agent_id = results["start"].agent_id
        assert agent_id is not None

        async def stopped() -> bool:
            return (await statuses_of(kafka_bootstrap, state, agent_id))[-1:] == ["STOPPED"]

        await poll(stopped, "STOPPED from the 'agent left' callback")
        late_join = notice(
            101,
            {"agent_id": agent_id, "name": "hooked", "channel": "hooked"},
            noticeId="late-join",
            notifyMs=int(time.time() * 1000),
        )
        url = f"http://127.0.0.1:{settings.http_port}/webhooks/agora"
        async with session.post(url, data=late_join, headers=signed(late_join, SECRET)) as answer:
            assert (answer.status, (await answer.json())["verdict"]) == (200, "superseded")
        racing = AgentStateEvent(
            agent_id=agent_id,
            app_id=APP_ID,
            name="hooked",
            status="RUNNING",
            source="webhook",
            observed_at=datetime.now(UTC),
        )
        await produce(kafka_bootstrap, state, [(agent_id.encode(), encode_event(racing))])
        await poll(stopped, "the racing RUNNING repaired")
        assert worker.directory.resolve(APP_ID, "hooked") is None
        live = worker.directory.snapshot()
    history = await statuses_of(kafka_bootstrap, state, agent_id)
    assert history[:3] == ["RUNNING", "STOPPING", "STOPPED"]
    assert history[-2:] == ["RUNNING", "STOPPED"]
    assert (await replayed(settings)).snapshot() == live


async def test_replaying_the_state_topic_gives_the_live_directory(
    kafka_bootstrap: str,
    topics: dict[str, str],
    webhooked: tuple[Settings, RunningEmulator],
) -> None:
    """Starts, stops, restarts and callbacks on many keys: a worker replaying the state topic
    from the beginning ends with exactly the directory the running worker built live."""
    settings, emulator = webhooked
    names = [f"bot-{n}" for n in range(20)]
    commands: list[dict[str, Any]] = []
    for n, name in enumerate(names):
        commands.append(start(name, f"{name}-1"))
        if n % 2 == 0:
            commands.append({"command": "agent.stop", "id": f"{name}-stop", "name": name})
        if n % 4 == 0:
            commands.append(start(name, f"{name}-2"))
    await produce(kafka_bootstrap, topics["commands"], commands)
    agents = len(names) + len(names[::4])  # restarts add an agent
    async with in_process_worker(settings) as worker:
        results = by_id(
            await wait_for_results(kafka_bootstrap, topics["results"], {c["id"] for c in commands})
        )

        async def settled() -> bool:
            statuses = [status for _, status in worker.directory.snapshot().values()]
            return "STOPPING" not in statuses and len(statuses) == agents

        await poll(settled, "every stop confirmed by its callback")
        live = worker.directory.snapshot()
    assert {r.outcome for r in results.values()} == {"succeeded"}
    stopped = sorted(name or "" for name, status in live.values() if status == "STOPPED")
    assert stopped == sorted(names[::2])
    assert sum(status == "RUNNING" for _, status in live.values()) == len(names) // 2 + len(
        names[::4]
    )
    assert (await replayed(settings)).snapshot() == live
    assert emulator.state.agent_count() == agents


@pytest.mark.parametrize("state", [1, "1", "STARTING"], ids=["code", "code-as-text", "name"])
async def test_agent_list_takes_the_state_as_code_text_or_name(
    kafka_bootstrap: str, topics: dict[str, str], emulator: RunningEmulator, state: Any
) -> None:
    """Each form reaches the API as `state=1` and lists the starting agents only (here agents
    take a minute to start; the stopped one is STOPPING)."""
    emulator.state.start_delay = 60.0
    commands = [start("listed", "start"), {"command": "agent.stop", "id": "s", "name": "listed"}]
    commands += [start("running", "run"), {"command": "agent.list", "id": "list", "state": state}]
    await produce(kafka_bootstrap, topics["commands"], commands[:3])
    settings = make_settings(kafka_bootstrap, topics, emulator.api_url)
    async with in_process_worker(settings):
        await wait_for_results(kafka_bootstrap, topics["results"], {"start", "s", "run"})
        await produce(kafka_bootstrap, topics["commands"], commands[3:])
        results = by_id(
            await wait_for_results(
                kafka_bootstrap, topics["results"], {"start", "s", "run", "list"}
            )
        )
    listing = results["list"]
    assert listing.outcome == "succeeded"
    assert [item["agent_id"] for item in listing.data["data"]["list"]] == [results["run"].agent_id]
    [request] = emulator.requests("agent.list")
    assert request["query"] == "state=1"
