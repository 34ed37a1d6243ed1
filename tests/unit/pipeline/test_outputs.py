"""Output records: what each carries, and how results and dead letters are cut to fit."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import msgspec

from contracts import AgentStateEvent, ErrorInfo, ResultEvent, decode_agent_state, decode_result
from contracts.headers import (
    DLQ_CLASS_NAME,
    DLQ_CONNECTOR_NAME,
    DLQ_EXCEPTION_CLASS_NAME,
    DLQ_EXCEPTION_MESSAGE,
    DLQ_HEADERS_DROPPED,
    DLQ_NULL_VALUE,
    DLQ_ORIGINAL_BYTES,
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_SHA256,
    DLQ_ORIGINAL_TOPIC,
    DLQ_REASON,
    DLQ_STAGE,
    DLQ_TRUNCATED,
    REPLAY,
)
from worker.kafka.memory import StoredRecord
from worker.pipeline.outputs import (
    MAX_FIELD_CHARS_WHEN_SHRUNK,
    MAX_KEY_BYTES_WHEN_SHRUNK,
    OutputRecord,
    Outputs,
)
from worker.settings import Settings

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LONG = "x" * (MAX_FIELD_CHARS_WHEN_SHRUNK + 10)
LIMIT = 70_000  # max_record_bytes


def outputs(**overrides: Any) -> Outputs:
    values = {"group_id": "g", "max_record_bytes": LIMIT, "max_result_bytes": 1024, **overrides}
    return Outputs(msgspec.convert(values, Settings))


def result(**fields: Any) -> ResultEvent:
    values: dict[str, Any] = {
        "command_id": "c-1",
        "command": "agent.get",
        "outcome": "succeeded",
        "attempts": 1,
        "received_at": AT,
        "completed_at": AT,
        "duration_ms": 0.0,
        **fields,
    }
    return ResultEvent(**values)


def record(value: bytes | None, key: bytes | None = b"k", **fields: Any) -> StoredRecord:
    values: dict[str, Any] = {
        "topic": "convoai.commands",
        "partition": 3,
        "offset": 17,
        "key": key,
        "value": value,
        "headers": (),
        "timestamp": 0,
        **fields,
    }
    return StoredRecord(**values)


def headers(output: OutputRecord) -> dict[str, bytes]:
    return dict(output.headers)


def digest(data: Any) -> dict[str, Any]:
    encoded = msgspec.json.encode(data)
    return {"truncated": True, "bytes": len(encoded), "sha256": hashlib.sha256(encoded).hexdigest()}


def test_a_result_within_the_budget_is_published_as_it_is() -> None:
    """The results topic, the command's key, the event unchanged, CloudEvents headers."""
    event = result(data={"ok": True})
    output = outputs().result(event, b"key-1")
    assert (output.topic, output.key) == ("convoai.results", b"key-1")
    assert decode_result(output.value or b"") == event
    assert headers(output)["ce_id"] == b"c-1"
    assert headers(output)["ce_source"] == b"convoai-worker/g"
    assert headers(output)["ce_subject"] == b"agent.get"
    assert REPLAY not in headers(output)


def test_a_replayed_result_carries_the_marker_and_its_own_event_id() -> None:
    """The replay marker is a header and makes the CloudEvents id differ from the first one."""
    output = outputs().result(result(), b"k", "dlq:0:5")
    assert headers(output)[REPLAY] == b"dlq:0:5"
    assert headers(output)["ce_id"] == b"c-1@dlq:0:5"


def test_data_and_error_details_over_the_budget_become_digests() -> None:
    """Only the part over `max_result_bytes` is replaced; the rest of the result stays."""
    big, small = {"text": "y" * 2000}, {"a": 1}
    event = result(
        outcome="failed",
        data=big,
        error=ErrorInfo(code="client_error", message="m", details=big),
    )
    published = decode_result(outputs().result(event, b"k").value or b"")
    assert msgspec.to_builtins(published.data) == digest(big)
    assert published.error is not None
    assert msgspec.to_builtins(published.error.details) == digest(big)
    assert published.error.message == "m"
    fits = result(
        outcome="failed", data=small, error=ErrorInfo(code="c", message="m", details=small)
    )
    unchanged = decode_result(outputs().result(fits, b"k").value or b"")
    assert unchanged == fits


def test_a_result_larger_than_a_record_is_shrunk() -> None:
    """Text fields beyond the record limit are cut instead of the record being refused."""
    event = result(correlation_id="z" * 100_000)
    output = outputs().result(event, b"k")
    published = decode_result(output.value or b"")
    assert published.correlation_id == "z" * MAX_FIELD_CHARS_WHEN_SHRUNK
    assert output.size <= LIMIT


def test_a_shrunk_result_cuts_every_text_field_and_replaces_the_bodies() -> None:
    """For a result the broker refused: ids and texts cut, bodies replaced, the key cut."""
    event = result(
        outcome="failed",
        command_id=LONG,
        name=LONG,
        correlation_id=LONG,
        app_id=LONG,
        agent_id=LONG,
        phone_number=LONG,
        request_id=LONG,
        data={"d": 1},
        error=ErrorInfo(code="code", message=LONG, reason=LONG, details={"e": 2}),
    )
    output = outputs().shrunk_result(event, b"K" * 5000, "m")
    published = decode_result(output.value or b"")
    cut = LONG[:MAX_FIELD_CHARS_WHEN_SHRUNK]
    texts = (
        published.command_id,
        published.name,
        published.correlation_id,
        published.app_id,
        published.agent_id,
        published.phone_number,
        published.request_id,
    )
    assert texts == (cut,) * 7
    assert msgspec.to_builtins(published.data) == digest({"d": 1})
    assert published.error is not None
    assert (published.error.code, published.error.message, published.error.reason) == (
        "code",
        cut,
        cut,
    )
    assert msgspec.to_builtins(published.error.details) == digest({"e": 2})
    assert output.key == b"K" * MAX_KEY_BYTES_WHEN_SHRUNK
    assert headers(output)[REPLAY] == b"m"
    assert (published.outcome, published.attempts) == (event.outcome, event.attempts)


def test_a_shrunk_result_keeps_absent_fields_absent() -> None:
    """Nothing is invented: no body, no error and no key stay so; short texts stay whole."""
    output = outputs().shrunk_result(result(name="n"), None)
    published = decode_result(output.value or b"")
    assert (published.data, published.error, published.name, published.agent_id) == (
        None,
        None,
        "n",
        None,
    )
    assert output.key is None


def test_a_state_event_is_keyed_by_agent_on_the_state_topic() -> None:
    """The compaction key is the agent id; the subject header names the agent."""
    event = AgentStateEvent(agent_id="A1", status="RUNNING", source="command", observed_at=AT)
    output = outputs().state(event)
    assert (output.topic, output.key) == ("convoai.agent-state", b"A1")
    assert decode_agent_state(output.value or b"") == event
    assert headers(output)["ce_subject"] == b"A1"
    assert headers(output)["ce_type"] == b"io.convoai.agent.state.v1"
    assert outputs().tombstone("A1") == OutputRecord("convoai.agent-state", b"A1", None, [])


def test_a_dead_letter_copies_the_record_and_says_where_and_why() -> None:
    """Key, value and original headers kept; the stage follows the reason."""
    original = record(b'{"x":1}', headers=(("trace", b"t"), ("empty", None)))
    letter = outputs().dead_letter(original, "retries_exhausted", TimeoutError("late"))
    assert (letter.topic, letter.key, letter.value) == ("convoai.commands.dlq", b"k", b'{"x":1}')
    found = headers(letter)
    assert (found["trace"], found["empty"]) == (b"t", b"")
    assert found[DLQ_STAGE] == b"TASK_PUT"
    assert found[DLQ_REASON] == b"retries_exhausted"
    assert found[DLQ_CLASS_NAME] == b"worker.pipeline.retries_exhausted"
    assert found[DLQ_CONNECTOR_NAME] == b"g"
    assert (found[DLQ_ORIGINAL_TOPIC], found[DLQ_ORIGINAL_PARTITION]) == (b"convoai.commands", b"3")
    assert found[DLQ_ORIGINAL_OFFSET] == b"17"
    assert (found[DLQ_EXCEPTION_CLASS_NAME], found[DLQ_EXCEPTION_MESSAGE]) == (
        b"TimeoutError",
        b"late",
    )
    assert DLQ_NULL_VALUE not in found
    decoded = outputs().dead_letter(original, "decode_error", ValueError("bad"))
    assert headers(decoded)[DLQ_STAGE] == b"VALUE_CONVERTER"
    assert DLQ_TRUNCATED not in headers(decoded)


def test_a_dead_letter_over_the_record_limit_keeps_the_head_of_the_value() -> None:
    """The value is cut to fit; its size and SHA-256 are headers."""
    value = b"v" * 200_000
    letter = outputs().dead_letter(record(value), "decode_error", ValueError())
    assert letter.value is not None
    assert value.startswith(letter.value)
    assert len(letter.value) > 0
    assert letter.size <= LIMIT
    found = headers(letter)
    assert found[DLQ_ORIGINAL_BYTES] == b"200000"
    assert found[DLQ_ORIGINAL_SHA256] == hashlib.sha256(value).hexdigest().encode()
    assert found[DLQ_TRUNCATED] == b"true"
    assert DLQ_HEADERS_DROPPED not in found


def test_without_its_value_a_dead_letter_keeps_only_size_and_hash() -> None:
    """`keep_value=False` (the broker refused the copy): an empty value, the same headers."""
    letter = outputs().dead_letter(record(b"abc"), "decode_error", ValueError(), keep_value=False)
    assert letter.value == b""
    assert headers(letter)[DLQ_ORIGINAL_BYTES] == b"3"
    assert headers(letter)[DLQ_ORIGINAL_SHA256] == hashlib.sha256(b"abc").hexdigest().encode()
    assert letter.topic == "convoai.commands.dlq"


def test_a_dead_letter_of_a_null_value_says_so() -> None:
    """A key-only record: the letter keeps the key, an absent value, and a header saying so."""
    letter = outputs().dead_letter(record(None), "decode_error", ValueError("null"))
    assert (letter.key, letter.value) == (b"k", None)
    assert headers(letter)[DLQ_NULL_VALUE] == b"true"


def test_original_headers_too_large_for_a_record_are_dropped_and_counted() -> None:
    """When the original key and headers alone exceed the limit, they go; the count stays."""
    big = record(b"v", key=b"K" * 40_000, headers=(("h1", b"x" * 40_000), ("h2", b"y")))
    letter = outputs().dead_letter(big, "decode_error", ValueError())
    found = headers(letter)
    assert found[DLQ_HEADERS_DROPPED] == b"2"
    assert "h1" not in found
    assert letter.key == b"K" * MAX_KEY_BYTES_WHEN_SHRUNK
    assert letter.value == b"v"
    assert letter.size <= LIMIT


def test_a_list_over_the_budget_keeps_its_cursor_and_total() -> None:
    """A truncated list page still says where the next page starts and how many there are."""
    meta = {"cursor": "agent-51", "total": 900}
    page = {"data": {"count": 50, "list": [{"agent_id": "x" * 40}] * 50}, "meta": meta}
    event = result(command="agent.list", data=page)
    data = msgspec.json.decode(outputs().result(event, b"k").value or b"")["data"]
    assert data["meta"] == meta
    assert data["truncated"] is True
    assert "fewer pages" in data["hint"]


def test_a_history_over_the_budget_says_how_to_read_it_in_parts() -> None:
    """The stand-in of a long history names the options that read it in parts."""
    contents = [{"role": "user", "content": "y" * 100}] * 40
    event = result(command="agent.history", data={"agent_id": "a", "contents": contents})
    data = msgspec.json.decode(outputs().result(event, b"k").value or b"")["data"]
    assert "contents_from and contents_count" in data["hint"]
    assert "meta" not in data
