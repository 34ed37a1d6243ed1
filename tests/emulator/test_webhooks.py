"""NCS callbacks sent by the emulator: events, envelope, signatures, retries, no blocking."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from aiohttp import web

from tests.emulator.harness import APP_ID, running_emulator, serving, start_body
from worker.emulator.config import EmulatorConfig
from worker.emulator.webhooks import sign

SECRET = "ncs-secret"
PROJECT = f"/v2/projects/{APP_ID}"


class Receiver:
    """An NCS endpoint that records callbacks and answers with scripted statuses."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()  # answers wait for it
        self.release.set()

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append((dict(request.headers), await request.read()))
        self.arrived.set()
        await self.release.wait()
        return web.json_response({}, status=self.statuses.pop(0) if self.statuses else 200)

    async def events(self, count: int, within: float = 5.0) -> list[dict[str, Any]]:
        """The first `count` callback bodies, waiting for them to arrive."""
        deadline = time.monotonic() + within
        while len(self.calls) < count and time.monotonic() < deadline:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), deadline - time.monotonic())
        return [msgspec.json.decode(body) for _, body in self.calls[:count]]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    """A running receiver and its URL."""
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/ncs", receiver.handle)
    async with serving(app) as origin:
        yield receiver, f"{origin}/ncs"


def config(url: str) -> EmulatorConfig:
    """Notices to `url`; agents join at once, so their 101 comes before anything else."""
    return EmulatorConfig(webhook_url=url, webhook_secret=SECRET, start_delay=0.0)


def test_signature_matches_the_reference_test_vectors() -> None:
    """HMAC-SHA1 and HMAC-SHA256 of the documented body with secret `secret`."""
    body = (
        b'{"eventType":10,"noticeId":"4eb720f0-8da7-11e9-a43e53f411c2761f",'
        b'"notifyMs":1560408533119,"payload":{"a":"1","b":2},"productId":1}'
    )
    assert sign(body, "secret") == {
        "Agora-Signature": "92ea60c5249b641f80de046d11e1cb2d15f1d1b2",
        "Agora-Signature-V2": "6ba85d7c1122f6c51143cce7765f06c601c0fbd691987f4510e45b943b2639e8",
    }


async def test_join_leave_and_error_events_are_signed_callbacks(
    receiver: tuple[Receiver, str],
) -> None:
    """Start, an injected error and stop send 101, 110 and 102 with valid signatures."""
    sink, url = receiver
    async with running_emulator(config(url)) as emulator:
        body = start_body(name="bot")
        body["properties"]["labels"] = {"team": "blue"}
        _, created = await emulator.call("POST", f"{PROJECT}/join", json=body)
        agent_id = created["agent_id"]
        error = {"errors": [{"module": "llm", "turn_id": 3, "code": 429, "message": "quota"}]}
        async with emulator.session.post(
            f"{emulator.origin}/_emulator/apps/{APP_ID}/agents/{agent_id}/error", json=error
        ) as reply:
            assert reply.status == 200
        await sink.events(2)  # the error's callback before the leave's: a fixed order
        await emulator.call("POST", f"{PROJECT}/agents/{agent_id}/leave")
        joined, failed, left = await sink.events(3)
    for headers, raw in sink.calls:
        v2 = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        v1 = hmac.new(SECRET.encode(), raw, hashlib.sha1).hexdigest()
        assert (headers["Agora-Signature-V2"], headers["Agora-Signature"]) == (v2, v1)
        assert headers["Content-Type"] == "application/json"
    assert [e["eventType"] for e in (joined, failed, left)] == [101, 110, 102]
    assert {e["productId"] for e in (joined, failed, left)} == {17}
    assert {e["sid"] for e in (joined, failed, left)} == {agent_id}
    assert len({e["noticeId"] for e in (joined, failed, left)}) == 3
    assert joined["payload"] == {
        "agent_id": agent_id,
        "name": "bot",
        "start_ts": created["create_ts"],
        "channel": "room-1",
        "labels": {"team": "blue"},
    }
    assert failed["payload"]["errors"] == error["errors"]
    assert failed["payload"]["turn_id"] == 3
    assert (left["payload"]["status"], left["payload"]["message"]) == ("STOPPED", "OK")
    assert left["notifyMs"] >= joined["notifyMs"]


async def test_join_event_waits_for_the_start_delay(receiver: tuple[Receiver, str]) -> None:
    """101 is sent when the agent has joined, i.e. after `start_delay`."""
    sink, url = receiver
    cfg = EmulatorConfig(webhook_url=url, webhook_secret=SECRET, start_delay=0.6)
    async with running_emulator(cfg) as emulator:
        started = time.monotonic()
        await emulator.call("POST", f"{PROJECT}/join", json=start_body())
        assert [e["eventType"] for e in await sink.events(1)] == [101]
        assert time.monotonic() - started >= 0.6


async def test_failed_deliveries_are_retried_with_the_same_notice_id(
    receiver: tuple[Receiver, str],
) -> None:
    """A non-200 answer is retried; the notice keeps its id and gets a fresh notifyMs."""
    sink, url = receiver
    sink.statuses = [500]
    async with running_emulator(config(url)) as emulator:
        await emulator.call("POST", f"{PROJECT}/join", json=start_body())
        first, second = await sink.events(2)
    assert first["noticeId"] == second["noticeId"]
    assert second["notifyMs"] >= first["notifyMs"]


async def test_a_stuck_receiver_does_not_delay_api_responses(
    receiver: tuple[Receiver, str],
) -> None:
    """API calls answer while the receiver holds every delivery unanswered."""
    sink, url = receiver
    sink.release.clear()
    async with running_emulator(config(url)) as emulator:
        for n in range(5):
            call = emulator.call("POST", f"{PROJECT}/join", json=start_body(f"n{n}"))
            assert (await asyncio.wait_for(call, timeout=5))[0] == 200
        await sink.events(1)
        sink.release.set()
