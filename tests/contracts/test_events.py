"""Result and agent-state events: invariants, UTC timestamps, a fixed wire shape, round trips."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import (
    AgentStateEvent,
    ErrorInfo,
    EventDecodeError,
    ResultEvent,
    decode_agent_state,
    decode_result,
    encode_event,
)
from tests.contracts.strategies import agent_state_objects, no_deadline, result_objects

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FAILED = ErrorInfo(
    code="api_error", message="agent not found", http_status=404, reason="TaskNotFound"
)


def result(**overrides: Any) -> ResultEvent:
    fields: dict[str, Any] = {
        "command_id": "c-1",
        "command": "agent.stop",
        "outcome": "succeeded",
        "attempts": 1,
        "received_at": T0,
        "completed_at": T0 + timedelta(milliseconds=30),
        "duration_ms": 30.0,
    }
    return ResultEvent(**{**fields, **overrides})


class TestResultEvent:
    @pytest.mark.parametrize("outcome", ["failed", "rejected", "expired", "unknown"])
    def test_every_outcome_but_success_needs_an_error(self, outcome: str) -> None:
        """A consumer can always tell why a command did not succeed."""
        with pytest.raises(ValueError, match="error"):
            result(outcome=outcome)
        assert result(outcome=outcome, error=FAILED).error == FAILED

    def test_success_carries_no_error(self) -> None:
        """`data` or `error`, never both kinds of answer."""
        with pytest.raises(ValueError, match="error"):
            result(error=FAILED)

    def test_timestamps_are_converted_to_utc(self) -> None:
        """The same instant, written with `Z`, whatever zone the worker used."""
        local = T0.astimezone(timezone(timedelta(hours=-5)))
        event = result(received_at=local, completed_at=local)
        assert event.received_at.utcoffset() == timedelta(0)
        assert event.received_at == T0
        assert b'"received_at":"2026-03-01T12:00:00Z"' in encode_event(event)

    def test_every_field_is_written_even_when_null(self) -> None:
        """Consumers in any language read a fixed shape."""
        written = msgspec.json.decode(encode_event(result(data={"agent_id": "A"})))
        assert list(written) == [f.encode_name for f in msgspec.structs.fields(ResultEvent)]
        assert written["error"] is None
        assert written["data"] == {"agent_id": "A"}

    def test_decoding_enforces_the_outcome_rule(self) -> None:
        """A failed result without an error is not a valid result."""
        encoded = msgspec.json.encode(
            {**msgspec.json.decode(encode_event(result())), "outcome": "failed"}
        )
        with pytest.raises(EventDecodeError) as caught:
            decode_result(encoded)
        assert (caught.value.kind, caught.value.path) == ("invalid_field", "$")

    def test_a_naive_timestamp_is_refused(self) -> None:
        """Timestamps without an offset are ambiguous."""
        document = {
            **msgspec.json.decode(encode_event(result())),
            "completed_at": "2026-03-01T12:00:00",
        }
        with pytest.raises(EventDecodeError) as caught:
            decode_result(msgspec.json.encode(document))
        assert caught.value.path == "$.completed_at"

    def test_unknown_fields_are_ignored_by_consumers(self) -> None:
        """A newer worker may add fields; older consumers keep working."""
        document = {**msgspec.json.decode(encode_event(result())), "added_later": 1}
        assert decode_result(msgspec.json.encode(document)) == result()


class TestAgentStateEvent:
    def test_unknown_statuses_pass_through(self) -> None:
        """The API may add statuses; they are data, not errors."""
        event = AgentStateEvent(
            agent_id="A", status="HIBERNATING", source="reconcile", observed_at=T0
        )
        assert decode_agent_state(encode_event(event)).status == "HIBERNATING"

    def test_the_source_is_one_of_three(self) -> None:
        """command, webhook or reconcile."""
        document = msgspec.json.decode(
            encode_event(
                AgentStateEvent(agent_id="A", status="RUNNING", source="command", observed_at=T0)
            )
        )
        with pytest.raises(EventDecodeError) as caught:
            decode_agent_state(msgspec.json.encode({**document, "source": "guess"}))
        assert caught.value.path == "$.source"


@pytest.mark.parametrize("decode", [decode_result, decode_agent_state])
def test_unreadable_event_records_are_malformed_json(decode: Any) -> None:
    """Consumers get one error type for garbage on the output topics."""
    with pytest.raises(EventDecodeError) as caught:
        decode(b"\xff{")
    assert (caught.value.kind, caught.value.path) == ("malformed_json", "$")


@no_deadline
@given(st.binary())
def test_arbitrary_bytes_only_raise_the_event_decode_error(data: bytes) -> None:
    """Event decoders never crash their consumer with anything else."""
    for decode in (decode_result, decode_agent_state):
        with contextlib.suppress(EventDecodeError):
            decode(data)


@no_deadline
@given(result_objects())
def test_results_round_trip(obj: dict[str, Any]) -> None:
    """decode → encode → decode is the identity for every valid result."""
    event = decode_result(msgspec.json.encode(obj))
    assert decode_result(encode_event(event)) == event


@no_deadline
@given(agent_state_objects())
def test_agent_state_events_round_trip(obj: dict[str, Any]) -> None:
    """decode → encode → decode is the identity for every valid state event."""
    event = decode_agent_state(msgspec.json.encode(obj))
    assert decode_agent_state(encode_event(event)) == event
