"""`tail` renders every record it can meet, and keeps a dead letter's original record."""

from __future__ import annotations

import base64
from typing import NamedTuple

import msgspec

from contracts.headers import (
    DLQ_EXCEPTION_CLASS_NAME,
    DLQ_EXCEPTION_MESSAGE,
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_TOPIC,
    DLQ_REASON,
    DLQ_TRUNCATED,
)
from worker.commands.render import render
from worker.settings import Settings

SETTINGS = Settings()


class Record(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp: int = 1_772_366_400_000


def test_a_tombstone_on_the_state_topic_is_a_forgotten_agent() -> None:
    record = Record(SETTINGS.topic_state, 0, 7, b"A42", None, [])
    assert render(record, SETTINGS, as_json=False) == (
        "12:00:00 state   A42 forgotten (tombstone)",
        False,
    )
    line, _ = render(record, SETTINGS, as_json=True)
    assert msgspec.json.decode(line) == {
        "topic": "agent-state",
        "agent_id": "A42",
        "tombstone": True,
    }


def test_junk_on_the_results_topic_is_reported_not_raised() -> None:
    record = Record(SETTINGS.topic_results, 2, 9, None, b"\xffjunk", [])
    line, is_result = render(record, SETTINGS, as_json=False)
    assert not is_result
    assert line.startswith("12:00:00 result  convoai.results[2]@9 is not an event: $: ")
    line, _ = render(record, SETTINGS, as_json=True)
    assert msgspec.json.decode(line)["source"] == "convoai.results[2]@9"


def test_junk_on_the_state_topic_is_reported_not_raised() -> None:
    record = Record(SETTINGS.topic_state, 0, 1, b"A", b'{"agent_id": 5}', [])
    line, _ = render(record, SETTINGS, as_json=False)
    assert "convoai.agent-state[0]@1 is not an event: $.agent_id: expected str, got int" in line


def test_a_dead_letter_in_json_keeps_the_original_key_value_and_headers() -> None:
    headers = [
        ("trace", b"t-1"),
        ("binary", b"\xff\x00"),
        (DLQ_ORIGINAL_TOPIC, b"convoai.commands"),
        (DLQ_ORIGINAL_PARTITION, b"3"),
        (DLQ_ORIGINAL_OFFSET, b"41"),
        (DLQ_EXCEPTION_CLASS_NAME, b"contracts.errors.CommandDecodeError"),
        (DLQ_EXCEPTION_MESSAGE, b"$.text: expected str, got int"),
        (DLQ_REASON, b"invalid_command"),
    ]
    value = b'{"command":"agent.speak","id":"c-1","name":"bot","text":5}'
    record = Record(SETTINGS.topic_dlq, 1, 5, b"bot", value, headers)
    line, _ = render(record, SETTINGS, as_json=True)
    assert msgspec.json.decode(line) == {
        "topic": "dlq",
        "partition": 1,
        "offset": 5,
        "source": "convoai.commands[3]@41",
        "reason": "invalid_command",
        "error": "CommandDecodeError: $.text: expected str, got int",
        "truncated": False,
        "redacted": False,
        "key": "bot",
        "value": value.decode(),
        "headers": {"trace": "t-1", "binary": {"base64": base64.b64encode(b"\xff\x00").decode()}},
    }
    text, _ = render(record, SETTINGS, as_json=False)
    assert text == (
        "12:00:00 dlq     convoai.commands[3]@41 CommandDecodeError: $.text: expected str, got int"
    )


def test_a_cut_dead_letter_says_so() -> None:
    record = Record(SETTINGS.topic_dlq, 0, 0, None, b"{", [(DLQ_TRUNCATED, b"true")])
    line, _ = render(record, SETTINGS, as_json=True)
    assert msgspec.json.decode(line)["truncated"] is True
