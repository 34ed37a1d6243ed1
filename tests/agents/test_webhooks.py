"""`POST /webhooks/agora` over HTTP: verification, verdicts, dedupe and the Kafka ack budget."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from tests.observability.fakes import (
    APP_ID,
    DEFAULTS,
    RecordingSink,
    counted,
    joined,
    new_metrics,
    notice,
    signed,
    webhook_receiver,
)
from worker.agents.ncs import SIGNATURE_HEADER
from worker.agents.webhooks import WebhookReceiver
from worker.metrics import Metrics
from worker.observability.health import Health
from worker.observability.server import OpsServer, build_ops_app
from worker.settings import Settings

BUDGET = 0.05


class Endpoint:
    """The webhook URL of a running ops server, with its sink and metrics."""

    def __init__(
        self, url: str, session: aiohttp.ClientSession, sink: RecordingSink, metrics: Metrics
    ) -> None:
        self.url = url
        self.session = session
        self.sink = sink
        self.metrics = metrics

    async def post(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """POST `body` (signed with the NCS secret unless `headers` are given)."""
        headers = signed(body) if headers is None else headers
        async with self.session.post(self.url, data=body, headers=headers) as response:
            return response.status, await response.json()


@contextlib.asynccontextmanager
async def serve(
    receiver: WebhookReceiver,
    sink: RecordingSink,
    metrics: Metrics,
    *,
    arrived: asyncio.Event | None = None,
) -> AsyncIterator[Endpoint]:
    """The receiver behind the real ops app on an ephemeral loopback port.

    `arrived` is set once a request's body is read and the receiver is about to handle it
    (it then runs without waiting on the network until its publish or its answer).
    """
    app = build_ops_app(metrics, Health(Settings()), receiver)
    if arrived is not None:

        @web.middleware
        async def signal(request: web.Request, handler: Handler) -> web.StreamResponse:
            await request.content.wait_eof()  # all in, unread: the receiver's read won't wait
            arrived.set()
            return await handler(request)

        app.middlewares.append(signal)
    async with OpsServer(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{server.port}/webhooks/agora"
        yield Endpoint(url, session, sink, metrics)


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    """A receiver with a short ack budget behind the real ops app."""
    sink, metrics = RecordingSink(), new_metrics()
    receiver = webhook_receiver(sink, metrics, ack_budget_seconds=BUDGET)
    async with serve(receiver, sink, metrics) as running:
        yield running


async def eventually(condition: Any, within: float = 2.0) -> None:
    """Wait (bounded) until `condition()` holds."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


class TestVerification:
    async def test_a_signed_state_event_is_published_then_acknowledged(self, endpoint: Endpoint):
        """200 `accepted` only after the sink (Kafka) acknowledged the mapped event."""
        assert await endpoint.post(joined()) == (200, {"ok": True, "verdict": "accepted"})
        (event,) = endpoint.sink.events
        assert (event.agent_id, event.app_id, event.status, event.source) == (
            "A42",
            APP_ID,
            "RUNNING",
            "webhook",
        )
        assert counted(endpoint.metrics, "101", "accepted") == 1

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {SIGNATURE_HEADER: ""},
            {SIGNATURE_HEADER: "0" * 64},
            signed(joined(), secret="another-secret"),
            signed(joined() + b" "),
        ],
        ids=["missing", "empty", "wrong", "other-secret", "other-body"],
    )
    async def test_unsigned_or_wrongly_signed_is_401(
        self, endpoint: Endpoint, headers: dict[str, str]
    ):
        """Nothing is parsed or published without the body's exact signature."""
        status, body = await endpoint.post(joined(), headers)
        assert status == 401
        assert body == {
            "ok": False,
            "verdict": "bad_signature",
            "reason": "missing or invalid Agora-Signature-V2",
        }
        assert endpoint.sink.attempts == 0
        assert counted(endpoint.metrics, "unknown", "bad_signature") == 1

    async def test_the_documented_vector_is_verified(self):
        """The documented vector (`docs/api-reference.md` §6.2) passes; product 1 is not ConvoAI."""
        body = (
            b'{"eventType":10,"noticeId":"4eb720f0-8da7-11e9-a43e53f411c2761f",'
            b'"notifyMs":1560408533119,"payload":{"a":"1","b":2},"productId":1}'
        )
        digest = "6ba85d7c1122f6c51143cce7765f06c601c0fbd691987f4510e45b943b2639e8"
        sink, metrics = RecordingSink(), new_metrics()
        sent = 1560408533.119  # the vector's notifyMs: judged at the time it was sent
        receiver = webhook_receiver(sink, metrics, secret="secret", clock=lambda: sent)
        async with serve(receiver, sink, metrics) as endpoint:
            status, reply = await endpoint.post(body, {SIGNATURE_HEADER: digest})
            assert (status, reply["verdict"]) == (200, "unknown_type")
        assert counted(metrics, "unknown", "unknown_type") == 1

    async def test_disabled_without_a_secret(self):
        """No NCS secret configured: 503 saying webhooks are off, whatever the request."""
        sink, metrics = RecordingSink(), new_metrics()
        async with serve(webhook_receiver(sink, metrics, secret=""), sink, metrics) as endpoint:
            status, body = await endpoint.post(joined())
        assert status == 503
        assert body["verdict"] == "disabled"
        assert "CONVOAI_WEBHOOK_SECRET" in body["reason"]
        assert counted(metrics, "unknown", "disabled") == 1


class TestVerdicts:
    @pytest.mark.parametrize(
        ("body", "event_type", "reason"),
        [
            (b"not json", "unknown", "not an NCS notification: JSON is malformed"),
            (b'{"noticeId":"n"}', "unknown", "not an NCS notification: Object missing"),
            (notice(101, {"name": "bot"}), "101", "payload of event 101: Object missing"),
            (notice(202, {"agent_id": 7}), "202", "payload of event 202: Expected `str`"),
        ],
    )
    async def test_signed_but_malformed_is_400(
        self, endpoint: Endpoint, body: bytes, event_type: str, reason: str
    ):
        """A verified body that is no envelope, or a state event without its agent, is 400."""
        status, reply = await endpoint.post(body)
        assert (status, reply["verdict"]) == (400, "malformed")
        assert reply["reason"].startswith(reason)
        assert counted(endpoint.metrics, event_type, "malformed") == 1
        assert endpoint.sink.attempts == 0

    async def test_a_body_over_the_size_limit_is_413(self, endpoint: Endpoint):
        """Oversized bodies are refused before verification, and counted."""
        body = b"x" * (DEFAULTS.webhook_max_body_bytes + 1)
        async with endpoint.session.post(
            endpoint.url, data=io.BytesIO(body), headers=signed(body)
        ) as response:
            assert response.status == 413
            assert (await response.json())["verdict"] == "too_large"
        assert counted(endpoint.metrics, "unknown", "too_large") == 1

    @pytest.mark.parametrize("event_type", [103, 104, 110, 111, 112])
    async def test_events_without_a_state_change_are_accepted(
        self, endpoint: Endpoint, event_type: int
    ):
        """Documented events that change no state get 200 and publish nothing."""
        status, reply = await endpoint.post(notice(event_type, {"agent_id": "A42"}))
        assert (status, reply["verdict"]) == (200, "accepted")
        assert endpoint.sink.attempts == 0
        assert counted(endpoint.metrics, str(event_type), "accepted") == 1

    @pytest.mark.parametrize(
        "body",
        [notice(1001, {"agent_id": "A42"}), notice(101, {"agent_id": "A42"}, productId=1)],
        ids=["undocumented-type", "other-product"],
    )
    async def test_unknown_events_get_200_so_agora_does_not_retry(
        self, endpoint: Endpoint, body: bytes
    ):
        """Other products and undocumented types are acknowledged, counted and ignored."""
        status, reply = await endpoint.post(body)
        assert (status, reply["verdict"]) == (200, "unknown_type")
        assert endpoint.sink.attempts == 0
        assert counted(endpoint.metrics, "unknown", "unknown_type") == 1


class TestDelivery:
    async def test_a_redelivered_notice_is_a_no_op(self, endpoint: Endpoint):
        """The same noticeId again gets 200 `duplicate` and publishes nothing more."""
        assert (await endpoint.post(joined()))[0] == 200
        assert await endpoint.post(joined()) == (200, {"ok": True, "verdict": "duplicate"})
        assert len(endpoint.sink.events) == 1
        assert counted(endpoint.metrics, "101", "duplicate") == 1

    async def test_not_acknowledged_in_time_is_503_and_the_redelivery_is_a_no_op(
        self, endpoint: Endpoint
    ):
        """A slow Kafka: 503 within the budget; the publish completes; Agora's retry gets 200."""
        endpoint.sink.gate.clear()
        started = time.monotonic()
        status, reply = await endpoint.post(joined())
        assert time.monotonic() - started < 1.0
        assert (status, reply["verdict"]) == (503, "publish_timeout")
        assert endpoint.sink.events == []
        endpoint.sink.gate.set()
        await eventually(lambda: endpoint.sink.events)
        assert (await endpoint.post(joined()))[1]["verdict"] == "duplicate"
        assert endpoint.sink.attempts == 1
        assert counted(endpoint.metrics, "101", "publish_timeout") == 1

    async def test_a_redelivery_during_the_publish_waits_for_the_same_publish(self):
        """Never two publishes for one notice; the retry is answered 200 once Kafka acks."""
        sink, metrics, arrived = RecordingSink(), new_metrics(), asyncio.Event()
        sink.gate.clear()
        receiver = webhook_receiver(sink, metrics, ack_budget_seconds=BUDGET)
        async with serve(receiver, sink, metrics, arrived=arrived) as endpoint:
            assert (await endpoint.post(joined()))[0] == 503
            arrived.clear()
            retry = asyncio.create_task(endpoint.post(joined()))
            await asyncio.wait_for(arrived.wait(), 5)  # the retry waits on the first publish
            sink.gate.set()
            assert (await retry)[1]["verdict"] == "accepted"
        assert sink.attempts == 1
        assert len(sink.events) == 1

    async def test_a_state_the_worker_knows_better_is_superseded(self, endpoint: Endpoint):
        """A "joined" notice for an agent already stopped: 200, nothing published, and the
        notice is remembered like any other."""
        endpoint.sink.news = False
        assert await endpoint.post(joined()) == (200, {"ok": True, "verdict": "superseded"})
        assert endpoint.sink.events == []
        assert counted(endpoint.metrics, "101", "superseded") == 1
        assert (await endpoint.post(joined()))[1]["verdict"] == "duplicate"

    async def test_a_failed_publish_is_503_and_retried_on_redelivery(self, endpoint: Endpoint):
        """Kafka refused: 503 `publish_failed`; the notice is not remembered, so Agora's retry
        publishes it."""
        endpoint.sink.failures = 1
        status, reply = await endpoint.post(joined())
        assert (status, reply["verdict"]) == (503, "publish_failed")
        assert (await endpoint.post(joined()))[1]["verdict"] == "accepted"
        assert endpoint.sink.attempts == 2
        assert len(endpoint.sink.events) == 1
        assert counted(endpoint.metrics, "101", "publish_failed") == 1

    async def test_remembered_notices_are_bounded(self):
        """The oldest notice is forgotten beyond `remember`; a recent one stays deduplicated."""
        sink, metrics = RecordingSink(), new_metrics()
        receiver = webhook_receiver(sink, metrics, remember=2)
        bodies = [notice(101, {"agent_id": f"A{n}"}, noticeId=f"n-{n}") for n in range(3)]
        async with serve(receiver, sink, metrics) as endpoint:
            for body in bodies:
                assert (await endpoint.post(body))[0] == 200
            assert (await endpoint.post(bodies[2]))[1]["verdict"] == "duplicate"
            assert (await endpoint.post(bodies[0]))[1]["verdict"] == "accepted"
        assert [event.agent_id for event in sink.events] == ["A0", "A1", "A2", "A0"]

    async def test_shutdown_cancels_publishes_still_running(self):
        """Closing the server leaves no publish task behind (Agora got no 200 for it)."""
        sink, metrics = RecordingSink(), new_metrics()
        sink.gate.clear()
        receiver = webhook_receiver(sink, metrics, ack_budget_seconds=BUDGET)
        async with serve(receiver, sink, metrics) as endpoint:
            assert (await endpoint.post(joined()))[0] == 503
        assert sink.cancelled == 1
        assert sink.events == []


class TestReplaysAndSlowClients:
    @pytest.mark.parametrize("offset_seconds", [-601.0, 61.0])
    async def test_a_notice_too_old_or_from_the_future_changes_nothing(
        self, endpoint: Endpoint, offset_seconds: float
    ):
        """A signed notice replayed 10 minutes later (or post-dated) is answered, not applied."""
        sent = int((time.time() + offset_seconds) * 1000)
        body = notice(101, {"agent_id": "A42", "name": "bot"}, notifyMs=sent, noticeId="replayed")
        status, reply = await endpoint.post(body)
        assert (status, reply["verdict"]) == (200, "stale")
        assert endpoint.sink.attempts == 0
        assert counted(endpoint.metrics, "101", "stale") == 1

    async def test_a_recent_notice_is_applied(self, endpoint: Endpoint):
        """Nine minutes is within the window NCS retries in."""
        sent = int((time.time() - 540) * 1000)
        body = notice(101, {"agent_id": "A43", "name": "bot"}, notifyMs=sent, noticeId="late")
        status, reply = await endpoint.post(body)
        assert (status, reply["verdict"]) == (200, "accepted")

    async def test_a_client_that_sends_its_body_too_slowly_gets_408(self):
        """The handler gives up on a body that does not arrive in time; the server stays up."""
        sink, metrics = RecordingSink(), new_metrics()
        receiver = webhook_receiver(sink, metrics, read_seconds=0.2)
        async with serve(receiver, sink, metrics) as endpoint:
            port = int(endpoint.url.split(":")[2].split("/")[0])
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"POST /webhooks/agora HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                + f"{SIGNATURE_HEADER}: {'0' * 64}\r\n\r\n{{".encode()
            )
            await writer.drain()  # 999 bytes never come
            status_line = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            assert status_line.startswith(b"HTTP/1.1 408")
            ok, _ = await endpoint.post(joined())
            assert ok == 200
        assert counted(metrics, "unknown", "slow_client") == 1
