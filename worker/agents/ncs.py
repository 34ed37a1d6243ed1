"""Agora NCS notifications for Conversational AI: signature, envelope and agent-state mapping.

Which event types change an agent's state (only those publish an `AgentStateEvent`):

- 101 agent joined → RUNNING.
- 102 agent left (stop, idle timeout, failure…) → the payload's `status` (STOPPED when absent),
  with its `message` (the leave reason).
- 201 inbound / 202 outbound call state → the call agent's status: START, CALLING, RINGING →
  STARTING; ANSWERED → RUNNING; HANGUP → STOPPED. TRANSFERED (sic) says nothing documented
  about the agent, so it changes nothing; a HANGUP or a 102 follows when the agent ends.
- 103 history, 104 token expiry, 111 metrics, 112 turns: no state change.
- 110 agent error: no state change either. A module error (an LLM 429, a TTS timeout) does not
  end the session by itself, and "ERROR" is not a status the API reports; when the error does
  end the agent, Agora sends a 102 with status FAILED.

Status names are the API's, passed through as Agora sends them. The envelope carries no App ID:
the event's `app_id` is that of the endpoint the notice was sent to (`worker.agents.webhooks`).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from contracts import AgentStateEvent

SIGNATURE_HEADER = "Agora-Signature-V2"
SIGNATURE_LENGTH = 64  # hex digits of an HMAC-SHA256
_LOWER_HEX = frozenset("0123456789abcdef")
CONVOAI_PRODUCT_ID = 17
AGENT_JOINED, AGENT_LEFT = 101, 102
INBOUND_CALL_STATE, OUTBOUND_CALL_STATE = 201, 202
STATE_EVENT_TYPES = frozenset({AGENT_JOINED, AGENT_LEFT, INBOUND_CALL_STATE, OUTBOUND_CALL_STATE})
EVENT_TYPES = STATE_EVENT_TYPES | {103, 104, 110, 111, 112}  # the rest change no state
CALL_AGENT_STATUS = {
    "START": "STARTING",
    "CALLING": "STARTING",
    "RINGING": "STARTING",
    "ANSWERED": "RUNNING",
    "HANGUP": "STOPPED",
}
# 9999-12-31T23:59:59.999Z, the last instant a datetime holds: larger values would not convert.
MAX_NOTIFY_MS = 253_402_300_799_999


class Notice(msgspec.Struct, frozen=True, rename="camel"):
    """The NCS envelope. `payload` stays raw: most event types never need it parsed."""

    notice_id: Annotated[str, Meta(min_length=1)]
    product_id: int
    event_type: int
    payload: msgspec.Raw
    notify_ms: Annotated[int, Meta(ge=0, le=MAX_NOTIFY_MS)] = 0
    sid: str = ""

    @property
    def documented(self) -> bool:
        """A ConvoAI event type Agora documents (anything else is acknowledged and ignored)."""
        return self.product_id == CONVOAI_PRODUCT_ID and self.event_type in EVENT_TYPES


class AgentPayload(msgspec.Struct, frozen=True):
    """The fields of the 101, 102, 201 and 202 payloads that make a state event."""

    agent_id: Annotated[str, Meta(min_length=1)]
    name: str | None = None
    channel: str | None = None
    status: str | None = None  # 102
    message: str | None = None  # 102
    state: str | None = None  # 201, 202
    labels: dict[str, Any] | None = None


decode_notice = msgspec.json.Decoder(Notice).decode
_decode_agent_payload = msgspec.json.Decoder(AgentPayload).decode


def signature(secret: bytes, body: bytes) -> str:
    """The `Agora-Signature-V2` value of `body`: lowercase hex HMAC-SHA256."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


class SignatureCheck:
    """`Agora-Signature-V2` checked over a body fed as it arrives, compared in constant time."""

    def __init__(self, secret: bytes, provided: str | None) -> None:
        self._provided = provided or ""
        self._mac = hmac.new(secret, digestmod=hashlib.sha256)

    @property
    def plausible(self) -> bool:
        """Whether the value provided can be a signature at all (64 lowercase hex digits);
        when it cannot, the body need not be read."""
        return len(self._provided) == SIGNATURE_LENGTH and _LOWER_HEX.issuperset(self._provided)

    def update(self, chunk: bytes) -> None:
        """Feed the next bytes of the raw body."""
        self._mac.update(chunk)

    def valid(self) -> bool:
        """Whether the body fed so far is the one signed."""
        return self.plausible and hmac.compare_digest(self._mac.hexdigest(), self._provided)


def state_event(notice: Notice, app_id: str) -> AgentStateEvent | None:
    """The state change a notice reports, or None when it reports none.

    Raises `msgspec.DecodeError` (or its subclass `ValidationError`) when the payload of a
    state-changing event type lacks what the event needs.
    """
    if notice.product_id != CONVOAI_PRODUCT_ID or notice.event_type not in STATE_EVENT_TYPES:
        return None
    payload = _decode_agent_payload(notice.payload)
    if notice.event_type == AGENT_JOINED:
        status, message = "RUNNING", None
    elif notice.event_type == AGENT_LEFT:
        status, message = payload.status or "STOPPED", payload.message
    elif payload.state in CALL_AGENT_STATUS:
        status, message = CALL_AGENT_STATUS[payload.state], f"call {payload.state}"
    else:
        return None
    return AgentStateEvent(
        agent_id=payload.agent_id,
        app_id=app_id,
        name=payload.name or None,
        status=status,
        source="webhook",
        channel=payload.channel or None,
        message=message or None,
        observed_at=_observed_at(notice.notify_ms),
        labels=_labels(payload.labels),
    )


def _observed_at(notify_ms: int) -> datetime:
    """When Agora sent the notice (its send time), or now when the envelope lacks it."""
    if not notify_ms:
        return datetime.now(UTC)
    return datetime.fromtimestamp(notify_ms / 1000, UTC)


def _labels(labels: dict[str, Any] | None) -> dict[str, str] | None:
    """`properties.labels` as string values (non-strings become their JSON text)."""
    if labels is None:
        return None
    return {
        key: value if isinstance(value, str) else msgspec.json.encode(value).decode()
        for key, value in labels.items()
    }
