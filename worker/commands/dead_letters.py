"""Reading a dead-letter record back: where it came from, why, and the original record.

The worker writes dead letters as the original key, value and headers plus Kafka Connect's
`__connect.errors.*` context and its own `convoai.dlq.*` headers (`contracts.headers`). `tail`
shows them; `dlq replay` re-produces the original record.
"""

from __future__ import annotations

import base64
from typing import Any, NamedTuple

import msgspec

from contracts.headers import (
    DLQ_EXCEPTION_CLASS_NAME,
    DLQ_EXCEPTION_MESSAGE,
    DLQ_HEADER_PREFIX,
    DLQ_NULL_VALUE,
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_TOPIC,
    DLQ_REASON,
    DLQ_REDACTED,
    DLQ_TRUNCATED,
    REPLAY,
)
from worker.kafka.ports import Record

WORKER_DLQ_PREFIX = "convoai.dlq."


class DeadLetter(NamedTuple):
    """A dead-letter record, parsed."""

    offset: int
    partition: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    original_headers: list[tuple[str, bytes]]
    source: str  # topic[partition]@offset of the original record, when known
    reason: str
    error: str  # "ExceptionClass: message"
    truncated: bool  # the value is only the head of the original (or empty)
    null_value: bool  # the original record had no value
    redacted: bool = False  # its secret fields were masked: it is not the original any more

    @property
    def command(self) -> str | None:
        """The `command` field of the original value, when it is readable JSON."""
        return _command_of(self.value)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready view that keeps the original key and value (base64 when not text)."""
        return {
            "topic": "dlq",
            "partition": self.partition,
            "offset": self.offset,
            "source": self.source,
            "reason": self.reason,
            "error": self.error,
            "truncated": self.truncated,
            "redacted": self.redacted,
            "key": _text_or_base64(self.key),
            "value": None if self.null_value else _text_or_base64(self.value),
            "headers": {name: _text_or_base64(value) for name, value in self.original_headers},
        }


def parse(record: Record) -> DeadLetter:
    """Split a dead-letter record into the original record and the context around it."""
    context: dict[str, str] = {}
    original: list[tuple[str, bytes]] = []
    for name, value in record.headers:
        if name.startswith((DLQ_HEADER_PREFIX, WORKER_DLQ_PREFIX)):
            context[name] = (value or b"").decode("utf-8", "replace")
        elif name != REPLAY:
            original.append((name, value or b""))
    where = context.get(DLQ_ORIGINAL_TOPIC, "?")
    source = (
        f"{where}[{context.get(DLQ_ORIGINAL_PARTITION, '?')}]@"
        f"{context.get(DLQ_ORIGINAL_OFFSET, '?')}"
    )
    error_class = context.get(DLQ_EXCEPTION_CLASS_NAME, "").rpartition(".")[2]
    return DeadLetter(
        offset=record.offset,
        partition=record.partition,
        timestamp_ms=record.timestamp,
        key=record.key,
        value=record.value,
        original_headers=original,
        source=source,
        reason=context.get(DLQ_REASON, ""),
        error=f"{error_class}: {context.get(DLQ_EXCEPTION_MESSAGE, '')}",
        truncated=context.get(DLQ_TRUNCATED) == "true",
        null_value=context.get(DLQ_NULL_VALUE) == "true",
        redacted=context.get(DLQ_REDACTED) == "true",
    )


def _command_of(value: bytes | None) -> str | None:
    if not value:
        return None
    try:
        obj = msgspec.json.decode(value)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    tag = obj.get("command") if isinstance(obj, dict) else None
    return tag if isinstance(tag, str) else None


def _text_or_base64(data: bytes | None) -> str | dict[str, str] | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}
