"""The ops server: Prometheus scrape, probes with JSON reasons, webhook route, lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.observability.fakes import FakeClock, RecordingSink, new_metrics, webhook_receiver
from worker.metrics import Metrics
from worker.observability.health import Health
from worker.observability.server import ListenError, OpsServer, build_ops_app
from worker.settings import Settings


class Ops:
    """A running ops server and what it reports on."""

    def __init__(
        self, base: str, session: aiohttp.ClientSession, metrics: Metrics, health: Health
    ) -> None:
        self.base = base
        self.session = session
        self.metrics = metrics
        self.health = health

    async def get(self, path: str) -> tuple[int, str, Any]:
        async with self.session.get(self.base + path) as response:
            content_type = response.headers["Content-Type"]
            body = await (response.json() if "json" in content_type else response.text())
            return response.status, content_type, body


@pytest.fixture
async def ops() -> AsyncIterator[Ops]:
    metrics, health = new_metrics(), Health(Settings(), clock=FakeClock())
    webhooks = webhook_receiver(RecordingSink(), metrics)
    app = build_ops_app(metrics, health, webhooks)
    async with OpsServer(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as session:
        yield Ops(f"http://127.0.0.1:{server.port}", session, metrics, health)


async def test_metrics_are_served_in_prometheus_text_format(ops: Ops):
    """/metrics exposes the injected registry, including values set by the worker."""
    ops.metrics.in_flight_limit.set(1000)
    ops.metrics.webhook_events.labels("101", "accepted").inc()
    status, content_type, text = await ops.get("/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    assert "convoai_build_info{" in text
    assert "convoai_commands_in_flight_limit 1000.0" in text
    assert 'convoai_webhook_events_total{event_type="101",verdict="accepted"} 1.0' in text


async def test_readyz_reports_why_it_is_not_ready(ops: Ops):
    """503 with the reason until the producer is up and the group joined, then 200."""
    status, _, body = await ops.get("/readyz")
    assert status == 503
    assert (body["ok"], body["reason"]) == (False, "producer not connected")
    ops.health.producer_ready(True)
    ops.health.group_state(joined=True, assigned_partitions=2)
    status, content_type, body = await ops.get("/readyz")
    assert (status, content_type) == (200, "application/json")
    assert body == {
        "ok": True,
        "reason": "ok",
        "details": {
            "producer_connected": True,
            "group_joined": True,
            "assigned_partitions": 2,
            "outputs_failing": False,
            "failed_tasks": [],
        },
    }


async def test_livez_fails_with_its_reason(ops: Ops):
    """200 while alive; 503 with the reason once the loop lags beyond the limit."""
    status, _, body = await ops.get("/livez")
    assert (status, body["ok"], body["reason"]) == (200, True, "ok")
    ops.health.loop_lag(60.0)
    status, _, body = await ops.get("/livez")
    assert status == 503
    assert body["ok"] is False
    assert body["reason"].startswith("event loop blocked")
    assert body["details"]["loop_lag_seconds"] == 60.0


async def test_webhooks_are_routed(ops: Ops):
    """POST /webhooks/agora reaches the receiver (unsigned: 401, and counted)."""
    async with ops.session.post(ops.base + "/webhooks/agora", data=b"{}") as response:
        assert response.status == 401
    sample = ops.metrics.registry.get_sample_value(
        "convoai_webhook_events_total", {"event_type": "unknown", "verdict": "bad_signature"}
    )
    assert sample == 1


async def test_a_taken_port_fails_with_the_address_in_the_error(ops: Ops):
    """A second server on the same port fails to start and says where."""
    port = int(ops.base.rsplit(":", 1)[1])
    metrics = new_metrics()
    app = build_ops_app(
        metrics, Health(Settings()), webhook_receiver(RecordingSink(), metrics, secret="")
    )
    with pytest.raises(ListenError) as raised:
        async with OpsServer(app, "127.0.0.1", port):
            pass
    assert raised.value.strerror == f"cannot listen on 127.0.0.1:{port}: address already in use"
