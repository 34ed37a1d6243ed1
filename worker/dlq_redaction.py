"""Dead letters without the secrets of the commands they copy (`CONVOAI_DLQ_REDACT_SECRETS`).

A dead letter is the original record, so by default it carries whatever the command carried:
the LLM and TTS keys and the RTC token of an agent.start, for as long as the dead-letter topic
keeps it. With redaction on, the copy's value has every secret-named field (`worker.redaction`)
masked, secret-named headers too, and says so in `convoai.dlq.redacted: true`.

The trade-off: a redacted letter is no longer the command that failed (replayed, it would start
an agent with `***` for its keys), so `convoai-worker dlq replay` skips it, as it skips a letter
cut to fit; the command must be sent again from its source. A value that is not a JSON document
is copied as it is: no field can be told apart in it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec

from contracts.headers import DLQ_REDACTED
from worker.kafka.ports import Headers, Record
from worker.redaction import MASK, is_secret_name, mask_secret_fields
from worker.settings import Settings

TRUE = b"true"


class _Copy(NamedTuple):
    """A record as the dead letter copies it (a `Record`)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp: int


def dead_letter_copy(settings: Settings) -> Callable[[Record], Record]:
    """What a dead letter copies of a record: the record itself, or its redacted copy."""
    return redacted if settings.dlq_redact_secrets else _unchanged


def redacted(record: Record) -> Record:
    """`record` with the values of its secret-named fields and headers masked and the redaction
    marked; the record itself when there is nothing to mask."""
    value = _masked_value(record.value)
    headers = [
        (name, MASK.encode() if is_secret_name(name) else header) for name, header in record.headers
    ]
    if value == record.value and headers == list(record.headers):
        return record
    marked = [*headers, (DLQ_REDACTED, TRUE)]
    return _Copy(
        record.topic,
        record.partition,
        record.offset,
        record.key,
        value,
        marked,
        record.timestamp,
    )


def _unchanged(record: Record) -> Record:
    return record


def _masked_value(value: bytes | None) -> bytes | None:
    if not value:
        return value
    try:
        document: Any = msgspec.json.decode(value)
    except (msgspec.DecodeError, RecursionError):
        return value
    masked = mask_secret_fields(document)
    return value if masked == document else msgspec.json.encode(masked)
