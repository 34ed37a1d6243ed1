"""End to end: the emulator's signed NCS callbacks through the ops server to state events."""

from __future__ import annotations

import asyncio
import time

from tests.emulator.harness import APP_ID, running_emulator, start_body
from tests.observability.fakes import (
    SECRET,
    RecordingSink,
    counted,
    new_metrics,
    webhook_receiver,
)
from worker.emulator.config import EmulatorConfig
from worker.observability.health import Health
from worker.observability.server import OpsServer, build_ops_app
from worker.settings import Settings


async def wait_for_events(sink: RecordingSink, count: int, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while len(sink.events) < count:
        assert time.monotonic() < deadline, f"{len(sink.events)} of {count} state events"
        await asyncio.sleep(0.01)


async def test_agent_lifecycle_from_emulator_callbacks():
    """Join, a module error and a failure-caused leave become RUNNING, nothing, FAILED."""
    metrics, sink = new_metrics(), RecordingSink()
    receiver = webhook_receiver(sink, metrics)
    app = build_ops_app(metrics, Health(Settings()), receiver)
    async with OpsServer(app, "127.0.0.1", 0) as ops:
        config = EmulatorConfig(
            webhook_url=f"http://127.0.0.1:{ops.port}/webhooks/agora", webhook_secret=SECRET
        )
        async with running_emulator(config) as emulator:
            body = start_body(name="bot")
            body["properties"]["labels"] = {"team": "blue"}
            _, created = await emulator.call("POST", f"/v2/projects/{APP_ID}/join", json=body)
            agent_id = created["agent_id"]
            await wait_for_events(sink, 1)
            admin = f"{emulator.origin}/_emulator/apps/{APP_ID}/agents/{agent_id}"
            error = {"errors": [{"module": "llm", "code": 429, "message": "quota"}]}
            for path, payload in (
                ("/error", error),
                ("/leave", {"status": "FAILED", "message": "RTC connection error"}),
            ):
                async with emulator.session.post(admin + path, json=payload) as reply:
                    assert reply.status == 200, await reply.text()
            await wait_for_events(sink, 2)
    joined, left = sink.events
    assert (joined.agent_id, joined.app_id, joined.name, joined.status) == (
        agent_id,
        APP_ID,
        "bot",
        "RUNNING",
    )
    assert (joined.channel, joined.labels, joined.source) == ("room-1", {"team": "blue"}, "webhook")
    assert (left.agent_id, left.status, left.message) == (
        agent_id,
        "FAILED",
        "RTC connection error",
    )
    assert counted(metrics, "101", "accepted") == 1
    assert counted(metrics, "110", "accepted") == 1
    assert counted(metrics, "102", "accepted") == 1
    assert counted(metrics, "unknown", "bad_signature") == 0


async def test_a_wrong_secret_on_either_side_is_refused():
    """Callbacks signed with another secret are 401 and publish nothing (the emulator retries)."""
    metrics, sink = new_metrics(), RecordingSink()
    app = build_ops_app(metrics, Health(Settings()), webhook_receiver(sink, metrics))
    async with OpsServer(app, "127.0.0.1", 0) as ops:
        config = EmulatorConfig(
            webhook_url=f"http://127.0.0.1:{ops.port}/webhooks/agora", webhook_secret="other"
        )
        async with running_emulator(config) as emulator:
            await emulator.call("POST", f"/v2/projects/{APP_ID}/join", json=start_body())
            deadline = time.monotonic() + 5
            while counted(metrics, "unknown", "bad_signature") < 2:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
    assert sink.attempts == 0
