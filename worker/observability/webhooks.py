"""Agora NCS callbacks for Conversational AI → agent-state events.

Verification comes first, on the raw bytes: `Agora-Signature-V2` must be the lowercase hex
HMAC-SHA256 of the body under the NCS secret (constant-time compare). Missing or wrong → 401;
webhooks disabled (no secret configured) → 503; not a JSON NCS envelope → 400.

Mapping (only events that change an agent's state publish one):

- 101 agent joined → RUNNING.
- 102 agent left (stop, idle timeout, failure…) → the payload's `status` (STOPPED when absent)
  with its `message`.
- 201/202 inbound/outbound call state → the call agent's status: START, CALLING, RINGING →
  STARTING; ANSWERED, TRANSFERED → RUNNING; HANGUP → STOPPED.
- 103 history, 104 token expiry, 110 module error, 111 metrics, 112 turns → no state event
  (counted; an error does not end the agent — a 102 follows if it does).

Agora resends when it gets no 200 quickly, so the response waits at most `ack_budget_seconds`
for Kafka to acknowledge the event: 200 when it did, 503 otherwise (Agora retries; the publish
keeps going, and a redelivery of the same `noticeId` then finds it published and gets 200). A
notice is remembered as done only after its event was acknowledged, so nothing is acknowledged
to Agora that is not on Kafka.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec
import structlog
from aiohttp import web

from contracts import AgentStateEvent
from worker.metrics import Metrics

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "Agora-Signature-V2"
CONVOAI_PRODUCT_ID = 17
ACK_BUDGET_SECONDS = 0.15
CALL_STATUS = {
    "START": "STARTING",
    "CALLING": "STARTING",
    "RINGING": "STARTING",
    "ANSWERED": "RUNNING",
    "TRANSFERED": "RUNNING",
    "HANGUP": "STOPPED",
}
NO_STATE_EVENTS = frozenset({103, 104, 110, 111, 112})


class StateSink(Protocol):
    """Publishes a state event; returns once Kafka acknowledged it."""

    async def publish_state(self, event: AgentStateEvent) -> None: ...


class Notice(msgspec.Struct, frozen=True):
    """The NCS envelope."""

    noticeId: str  # noqa: N815 - Agora's wire names
    productId: int  # noqa: N815
    eventType: int  # noqa: N815
    notifyMs: int = 0  # noqa: N815
    sid: str = ""
    payload: dict[str, Any] = msgspec.field(default_factory=dict)


_decode_notice = msgspec.json.Decoder(Notice).decode


def sign(secret: str, body: bytes) -> str:
    """The `Agora-Signature-V2` value for `body`."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookReceiver:
    """aiohttp handler for `POST /webhooks/agora`."""

    def __init__(
        self,
        secret: str,
        sink: StateSink,
        metrics: Metrics,
        *,
        app_id: str = "",
        ack_budget_seconds: float = ACK_BUDGET_SECONDS,
        remember: int = 10_000,
    ) -> None:
        self._secret = secret.encode()
        self._sink = sink
        self._metrics = metrics
        self._app_id = app_id
        self._budget = ack_budget_seconds
        self._remember = remember
        self._done: OrderedDict[str, None] = OrderedDict()
        self._publishing: dict[str, asyncio.Task[None]] = {}

    async def handle(self, request: web.Request) -> web.Response:
        """Verify, dedupe, map and publish one callback."""
        if not self._secret:
            return _reply(503, "webhooks are disabled: CONVOAI_WEBHOOK_SECRET is not set")
        body = await request.read()
        provided = request.headers.get(SIGNATURE_HEADER, "").strip().lower()
        if not provided or not hmac.compare_digest(
            hmac.new(self._secret, body, hashlib.sha256).hexdigest(), provided
        ):
            self._count("unknown", "bad_signature")
            return _reply(401, "missing or invalid Agora-Signature-V2")
        try:
            notice = _decode_notice(body)
        except msgspec.DecodeError as error:
            self._count("unknown", "malformed")
            return _reply(400, f"not an NCS notification: {error}")
        event_type = str(notice.eventType)
        if notice.noticeId in self._done:
            self._count(event_type, "duplicate")
            return _reply(200, "duplicate")
        event = self._state_event(notice)
        if event is None:
            known = notice.productId == CONVOAI_PRODUCT_ID and notice.eventType in NO_STATE_EVENTS
            self._count(event_type, "accepted" if known else "unknown_type")
            self._mark_done(notice.noticeId)
            return _reply(200, "accepted" if known else "ignored: not a ConvoAI agent event")
        return await self._publish(notice.noticeId, event_type, event)

    async def _publish(
        self, notice_id: str, event_type: str, event: AgentStateEvent
    ) -> web.Response:
        task = self._publishing.get(notice_id)
        if task is None:
            task = asyncio.create_task(self._sink.publish_state(event))
            self._publishing[notice_id] = task
            task.add_done_callback(lambda t: self._published(notice_id, t))
        done, _ = await asyncio.wait({task}, timeout=self._budget)
        if not done:
            self._count(event_type, "publish_timeout")
            return _reply(503, "state event not yet acknowledged by Kafka; retry")
        if task.exception() is not None:
            self._count(event_type, "publish_failed")
            return _reply(503, "state event could not be published; retry")
        self._count(event_type, "accepted")
        return _reply(200, "accepted")

    def _published(self, notice_id: str, task: asyncio.Task[None]) -> None:
        self._publishing.pop(notice_id, None)
        if not task.cancelled() and task.exception() is None:
            self._mark_done(notice_id)
        elif not task.cancelled():
            log.warning("webhook_publish_failed", notice_id=notice_id, error=repr(task.exception()))

    def _mark_done(self, notice_id: str) -> None:
        self._done[notice_id] = None
        if len(self._done) > self._remember:
            self._done.popitem(last=False)

    def _state_event(self, notice: Notice) -> AgentStateEvent | None:
        if notice.productId != CONVOAI_PRODUCT_ID:
            return None
        payload = notice.payload
        if notice.eventType == 101:
            status, message = "RUNNING", None
        elif notice.eventType == 102:
            status, message = str(payload.get("status") or "STOPPED"), payload.get("message")
        elif notice.eventType in (201, 202) and payload.get("state") in CALL_STATUS:
            status, message = CALL_STATUS[payload["state"]], f"call {payload['state']}"
        else:
            return None
        agent_id = payload.get("agent_id")
        if not isinstance(agent_id, str) or not agent_id:
            return None
        labels = payload.get("labels")
        return AgentStateEvent(
            agent_id=agent_id,
            app_id=self._app_id or None,
            name=_text(payload.get("name")),
            status=status,
            source="webhook",
            command_id=None,
            channel=_text(payload.get("channel")),
            message=_text(message),
            observed_at=datetime.fromtimestamp(notice.notifyMs / 1000, UTC)
            if notice.notifyMs
            else datetime.now(UTC),
            labels={str(k): str(v) for k, v in labels.items()}
            if isinstance(labels, dict)
            else None,
        )

    def _count(self, event_type: str, verdict: str) -> None:
        self._metrics.webhook_events.labels(_bounded(event_type), verdict).inc()


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _bounded(event_type: str) -> str:
    """Event types Agora documents, else `other`: labels must stay a small set."""
    return (
        event_type
        if event_type in {"101", "102", "103", "104", "110", "111", "112", "201", "202"}
        else "other"
    )


def _reply(status: int, message: str) -> web.Response:
    return web.json_response({"ok": status == 200, "message": message}, status=status)
