"""Test doubles for the operations surface: a clock, a state sink and NCS notices."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import msgspec
from prometheus_client import CollectorRegistry

from contracts import AgentStateEvent
from worker.agents.directory import AgentDirectory
from worker.agents.ncs import SIGNATURE_HEADER, signature
from worker.agents.webhooks import WebhookReceiver
from worker.api.tenants import Tenant, Tenants, default_regions
from worker.metrics import Metrics
from worker.settings import Settings

SECRET = "ncs-secret"
DEFAULTS = Settings()
APP_ID = "app-under-test"


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class PublishError(Exception):
    """What a broken Kafka producer raises in these tests."""


class RecordingSink:
    """A `StateSink` that records acknowledged events; can be held back or made to fail."""

    def __init__(self) -> None:
        self.events: list[AgentStateEvent] = []
        self.attempts = 0
        self.cancelled = 0
        self.failures = 0  # the next `failures` publishes raise
        self.news = True  # False: every event is known already (or older), nothing published
        self.gate = asyncio.Event()  # publishes wait for it; set unless a test holds them back
        self.gate.set()

    async def publish_state(self, event: AgentStateEvent) -> bool:
        self.attempts += 1
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.failures:
            self.failures -= 1
            raise PublishError("broker unavailable")
        if not self.news:
            return False
        self.events.append(event)
        return True


def tenants(**secrets: str) -> Tenants:
    """The App IDs served and their NCS secrets (`APP_ID` with `SECRET` when none given)."""
    secrets = secrets or {APP_ID: SECRET}
    regions = default_regions(Settings())
    return Tenants(
        {app_id: Tenant(None, secret, regions) for app_id, secret in secrets.items()},
        source="the test",
        default=regions,
    )


def webhook_receiver(
    sink: RecordingSink,
    metrics: Metrics,
    *,
    secret: str = SECRET,
    owners: AgentDirectory | None = None,
    **options: Any,
) -> WebhookReceiver:
    """A receiver for one App ID (`APP_ID`) checked with `secret`, with the default limits unless
    `options` say otherwise; `owners` holds no agent unless given."""
    limits = {
        "max_body_bytes": DEFAULTS.webhook_max_body_bytes,
        "max_concurrent": DEFAULTS.webhook_max_concurrent,
    }
    return WebhookReceiver(
        tenants(**{APP_ID: secret}), owners or AgentDirectory(), sink, metrics, **limits | options
    )


def new_metrics() -> Metrics:
    """Metrics on a fresh registry."""
    return Metrics(CollectorRegistry())


def counted(metrics: Metrics, event_type: str, verdict: str) -> float:
    """The value of `convoai_webhook_events_total` for these labels (0 when never counted)."""
    value = metrics.registry.get_sample_value(
        "convoai_webhook_events_total", {"event_type": event_type, "verdict": verdict}
    )
    return value or 0.0


def notice(event_type: int, payload: dict[str, Any], **envelope: Any) -> bytes:
    """An NCS callback body for ConvoAI (product 17) unless `envelope` says otherwise."""
    fields = {
        "noticeId": f"notice-{event_type}",
        "productId": 17,
        "eventType": event_type,
        "notifyMs": int(time.time() * 1000),  # the worker applies recent notices only
        "sid": "session-1",
        "payload": payload,
        **envelope,
    }
    return msgspec.json.encode(fields)


def joined() -> bytes:
    """An agent-joined notice (event 101 for agent A42, `bot`, in `room-1`) dated now: one built
    at import would be stale, and refused, by the time a long test run reaches it."""
    return notice(101, {"agent_id": "A42", "name": "bot", "channel": "room-1"})


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    """The headers Agora sends with `body`."""
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(secret.encode(), body),
    }


async def post_notice(
    port: int, body: bytes, *, path: str = "/webhooks/agora", secret: str = SECRET
) -> tuple[int, Any]:
    """POST a notice to the ops server on a loopback `port`, signed with `secret`; the answer's
    status and JSON body."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://127.0.0.1:{port}{path}", data=body, headers=signed(body, secret)
        ) as response,
    ):
        return response.status, await response.json()
