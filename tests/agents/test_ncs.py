"""NCS signature, envelope decoding and the event-type → agent-status mapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from contracts import decode_agent_state, encode_event
from tests.observability.fakes import APP_ID, notice
from worker.agents.ncs import SignatureCheck, decode_notice, signature, state_event

# The test vector of `docs/api-reference.md` §6.2: secret `secret` over exactly these bytes.
VECTOR_BODY = (
    b'{"eventType":10,"noticeId":"4eb720f0-8da7-11e9-a43e53f411c2761f",'
    b'"notifyMs":1560408533119,"payload":{"a":"1","b":2},"productId":1}'
)
VECTOR_SHA256 = "6ba85d7c1122f6c51143cce7765f06c601c0fbd691987f4510e45b943b2639e8"
AGENT = {"agent_id": "A42", "name": "bot", "channel": "room-1"}


def verify(secret: bytes, body: bytes, provided: str | None, chunk: int = 7) -> bool:
    """The signature check fed with `body` in pieces of `chunk` bytes, as it streams in."""
    check = SignatureCheck(secret, provided)
    for start in range(0, len(body), chunk):
        check.update(body[start : start + chunk])
    return check.valid()


class TestSignature:
    def test_matches_the_documented_vector(self):
        """Lowercase hex HMAC-SHA256 of the raw body with the NCS secret."""
        assert signature(b"secret", VECTOR_BODY) == VECTOR_SHA256
        assert verify(b"secret", VECTOR_BODY, VECTOR_SHA256, chunk=len(VECTOR_BODY))
        assert verify(b"secret", VECTOR_BODY, VECTOR_SHA256, chunk=1)

    @pytest.mark.parametrize(
        "provided",
        [
            None,
            "",
            VECTOR_SHA256.upper(),
            VECTOR_SHA256[:-1],
            "0" * 64,
            "é" * 64,  # non-ASCII must be refused, not crash the constant-time compare
        ],
    )
    def test_refuses_anything_but_the_exact_signature(self, provided: str | None):
        """Missing, truncated, wrong-case, wrong and non-ASCII values are all refused; only the
        wrong one needs the body to tell."""
        assert not verify(b"secret", VECTOR_BODY, provided)
        assert SignatureCheck(b"secret", provided).plausible == (provided == "0" * 64)

    def test_depends_on_every_byte_and_on_the_secret(self):
        """The same JSON spaced differently, or another secret, gives another signature."""
        assert not verify(b"secret", VECTOR_BODY.replace(b",", b", "), VECTOR_SHA256)
        assert not verify(b"other", VECTOR_BODY, VECTOR_SHA256)


class TestEnvelope:
    def test_decodes_the_documented_example(self):
        """Agora's camelCase envelope; the payload stays raw until needed."""
        decoded = decode_notice(VECTOR_BODY)
        assert (decoded.notice_id, decoded.product_id, decoded.event_type) == (
            "4eb720f0-8da7-11e9-a43e53f411c2761f",
            1,
            10,
        )
        assert decoded.notify_ms == 1560408533119
        assert msgspec.json.decode(decoded.payload) == {"a": "1", "b": 2}
        assert not decoded.documented

    @pytest.mark.parametrize(
        "body",
        [
            b"not json",
            b"[]",
            b'{"productId":17,"eventType":101,"payload":{}}',  # no noticeId
            b'{"noticeId":"","productId":17,"eventType":101,"payload":{}}',
            b'{"noticeId":"n","productId":17,"eventType":"101","payload":{}}',
            b'{"noticeId":"n","productId":17,"eventType":101}',  # no payload
            b'{"noticeId":"n","productId":17,"eventType":101,"payload":{"a":',
            b'{"noticeId":"n","productId":17,"eventType":101,"payload":{},"notifyMs":-1}',
            b'{"noticeId":"n","productId":17,"eventType":101,"payload":{},"notifyMs":1e20}',
        ],
    )
    def test_refuses_what_is_not_an_envelope(self, body: bytes):
        """Wrong JSON, missing or mistyped fields and impossible timestamps are decode errors."""
        with pytest.raises(msgspec.DecodeError):
            decode_notice(body)

    @pytest.mark.parametrize(
        ("product_id", "event_type", "documented"),
        [(17, 101, True), (17, 112, True), (17, 202, True), (17, 1001, False), (1, 101, False)],
    )
    def test_documented_means_a_convoai_event_type(
        self, product_id: int, event_type: int, documented: bool
    ):
        """Only product 17's documented event types are ConvoAI events."""
        body = notice(event_type, {}, productId=product_id)
        assert decode_notice(body).documented is documented


def event_for(event_type: int, payload: dict[str, Any], **envelope: Any):
    return state_event(decode_notice(notice(event_type, payload, **envelope)), APP_ID)


class TestMapping:
    @pytest.mark.parametrize(
        ("event_type", "extra", "status", "message"),
        [
            (101, {}, "RUNNING", None),
            (102, {"status": "STOPPED", "message": "OK"}, "STOPPED", "OK"),
            (
                102,
                {"status": "FAILED", "message": "RTC connection error"},
                "FAILED",
                "RTC connection error",
            ),
            (102, {"message": "Idle for too long"}, "STOPPED", "Idle for too long"),
            (201, {"state": "START"}, "STARTING", "call START"),
            (201, {"state": "ANSWERED"}, "RUNNING", "call ANSWERED"),
            (201, {"state": "HANGUP"}, "STOPPED", "call HANGUP"),
            (202, {"state": "CALLING"}, "STARTING", "call CALLING"),
            (202, {"state": "RINGING"}, "STARTING", "call RINGING"),
            (202, {"state": "ANSWERED"}, "RUNNING", "call ANSWERED"),
            (202, {"state": "HANGUP"}, "STOPPED", "call HANGUP"),
        ],
    )
    def test_state_changing_events(
        self, event_type: int, extra: dict[str, Any], status: str, message: str | None
    ):
        """Joined, left and call states become the API's status names."""
        event = event_for(event_type, {**AGENT, **extra})
        assert event is not None
        assert (event.agent_id, event.status, event.source) == ("A42", status, "webhook")
        assert event.message == message

    @pytest.mark.parametrize(
        ("event_type", "extra", "product_id"),
        [
            (103, {"contents": []}, 17),
            (104, {"message": "Task exceeded maximum lifetime"}, 17),
            (110, {"errors": [{"module": "llm", "code": 429, "message": "quota"}]}, 17),
            (111, {"metrics": []}, 17),
            (112, {"turns": [], "total_turn_count": 0}, 17),
            (201, {"state": "TRANSFERED"}, 17),
            (202, {"state": "SOMETHING_NEW"}, 17),
            (1001, {}, 17),
            (101, {}, 1),
        ],
    )
    def test_events_without_a_state_change(
        self, event_type: int, extra: dict[str, Any], product_id: int
    ):
        """History, expiry, errors, metrics, turns, transfers and foreign events change nothing."""
        assert event_for(event_type, {**AGENT, **extra}, productId=product_id) is None

    def test_fields_of_the_event(self):
        """App ID from the worker, the rest from the payload; time is Agora's send time."""
        payload = {**AGENT, "labels": {"team": "blue", "tier": 2, "beta": True}}
        event = event_for(101, payload, notifyMs=1_800_000_000_250)
        assert event is not None
        assert event.app_id == APP_ID
        assert (event.name, event.channel, event.command_id) == ("bot", "room-1", None)
        assert event.labels == {"team": "blue", "tier": "2", "beta": "true"}
        assert event.observed_at == datetime(2027, 1, 15, 8, 0, 0, 250_000, tzinfo=UTC)
        assert decode_agent_state(encode_event(event)) == event

    def test_missing_optional_fields_become_null(self):
        """A bare payload still makes a valid event; no notifyMs means observed now."""
        before = datetime.now(UTC)
        event = event_for(102, {"agent_id": "A42", "name": "", "labels": None}, notifyMs=0)
        assert event is not None
        assert (event.name, event.channel, event.message, event.labels) == (None,) * 4
        assert before <= event.observed_at <= datetime.now(UTC) + timedelta(seconds=1)
        assert decode_agent_state(encode_event(event)) == event

    @pytest.mark.parametrize(
        "payload",
        [{}, {"agent_id": ""}, {"agent_id": 42}, {"agent_id": "A", "status": 1}, []],
    )
    def test_a_state_event_needs_a_valid_payload(self, payload: Any):
        """Without an agent id (or with mistyped fields) there is no event to publish."""
        with pytest.raises(msgspec.ValidationError):
            event_for(102, payload)
