"""Kafka record headers of the output topics.

Dead-letter records carry the Kafka Connect DLQ context headers (`__connect.errors.*`), so
tools built for Connect dead-letter queues read them as they are. Results and agent-state
events follow the CloudEvents Kafka protocol binding in binary mode: the attributes travel as
`ce_*` headers and the record value stays the plain JSON event. All values are UTF-8 text,
numbers included, as Connect writes them.
"""

from __future__ import annotations

import functools
import re
import traceback
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal, NamedTuple

DLQ_HEADER_PREFIX = "__connect.errors."
DLQ_ORIGINAL_TOPIC = "__connect.errors.topic"
DLQ_ORIGINAL_PARTITION = "__connect.errors.partition"
DLQ_ORIGINAL_OFFSET = "__connect.errors.offset"
DLQ_CONNECTOR_NAME = "__connect.errors.connector.name"
DLQ_TASK_ID = "__connect.errors.task.id"
DLQ_STAGE = "__connect.errors.stage"
DLQ_CLASS_NAME = "__connect.errors.class.name"
DLQ_EXCEPTION_CLASS_NAME = "__connect.errors.exception.class.name"
DLQ_EXCEPTION_MESSAGE = "__connect.errors.exception.message"
DLQ_EXCEPTION_STACKTRACE = "__connect.errors.exception.stacktrace"

# Added by convoai-worker to its dead letters.
DLQ_REASON = "convoai.dlq.reason"
"""Why: `decode_error`, `invalid_command`, `retries_exhausted` or `output_rejected`."""
DLQ_ORIGINAL_BYTES = "convoai.dlq.original.bytes"
"""Size of the original value, when the copy's value was cut to fit (with the two below)."""
DLQ_ORIGINAL_SHA256 = "convoai.dlq.original.sha256"
"""Hex SHA-256 of the original value, when the copy's value was cut to fit."""
DLQ_TRUNCATED = "convoai.dlq.truncated"
"""`true` when the copy's value is only the head of the original (or empty)."""
DLQ_NULL_VALUE = "convoai.dlq.null-value"
"""`true` when the original record had no value (null)."""
DLQ_HEADERS_DROPPED = "convoai.dlq.original.headers-dropped"
"""How many original headers were left out because they alone exceeded the size limit."""
DLQ_REDACTED = "convoai.dlq.redacted"
"""`true` when the secret fields of the copy's value and headers were masked
(`CONVOAI_DLQ_REDACT_SECRETS`): the copy is no longer the original and cannot be replayed."""

REPLAY = "convoai.replay"
"""On a command record re-produced from the dead-letter topic (`convoai-worker dlq replay`):
the dead letter it came from, `<dlq topic>:<partition>:<offset>`. The worker runs such a record
even though its command id already has a result, once per marker; the result of a replayed
command carries the same header, so every worker knows that replay is done. A record whose
marker is not of that form, or names another topic than the worker's dead-letter topic, is
rejected (`parse_replay`), so the header cannot fill the memory of every worker that remembers
it; who may write markers at all is a matter of the commands topic's ACLs (docs/security.md)."""
REPLAY_MAX_BYTES = 300  # a topic name (249), a partition and an offset
REPLAY_PATTERN = re.compile(
    r"(?P<topic>[A-Za-z0-9._-]{1,249}):(?P<partition>\d{1,10}):(?P<offset>\d{1,19})"
)


class ReplayMarker(NamedTuple):
    """A record's replay header: the marker when it is one, else why it is refused."""

    marker: str | None
    refusal: str | None = None


def parse_replay(headers: Iterable[tuple[str, bytes | None]], dlq_topic: str) -> ReplayMarker:
    """The replay marker among `headers`, checked: of the form `dlq replay` writes and naming
    `dlq_topic`; `(None, None)` when there is none."""
    for name, value in headers:
        if name != REPLAY or not value:
            continue
        text = value.decode("ascii", "replace")
        found = REPLAY_PATTERN.fullmatch(text) if len(value) <= REPLAY_MAX_BYTES else None
        if found is None:
            shape = f"{REPLAY} ({len(value)} bytes) is not <topic>:<partition>:<offset>"
            return ReplayMarker(None, shape)
        if found["topic"] != dlq_topic:
            other = f"{REPLAY} names {found['topic']!r}, not the dead-letter topic {dlq_topic!r}"
            return ReplayMarker(None, other)
        return ReplayMarker(text)
    return ReplayMarker(None)


DlqStage = Literal["VALUE_CONVERTER", "TASK_PUT"]
"""Connect's names for where a record failed: `VALUE_CONVERTER` = the value could not be
decoded into a command; `TASK_PUT` = the command was decoded but executing it failed for good."""

STAGE_DECODE: DlqStage = "VALUE_CONVERTER"
STAGE_EXECUTE: DlqStage = "TASK_PUT"
DEFAULT_CONNECTOR_NAME = "convoai-worker"

CE_SPECVERSION = "ce_specversion"
CE_ID = "ce_id"
CE_SOURCE = "ce_source"
CE_TYPE = "ce_type"
CE_TIME = "ce_time"
CE_SUBJECT = "ce_subject"
CONTENT_TYPE = "content-type"
CLOUDEVENTS_SPECVERSION = "1.0"
JSON_CONTENT_TYPE = "application/json"

COMMAND_RESULT_EVENT_TYPE = "io.convoai.command.result.v1"
"""`ce_type` of `ResultEvent` records."""
AGENT_STATE_EVENT_TYPE = "io.convoai.agent.state.v1"
"""`ce_type` of `AgentStateEvent` records."""

Headers = list[tuple[str, bytes]]


def dlq_headers(
    *,
    topic: str,
    partition: int,
    offset: int,
    stage: DlqStage,
    error: BaseException,
    class_name: str | None = None,
    connector_name: str = DEFAULT_CONNECTOR_NAME,
    task_id: int = 0,
) -> Headers:
    """Context headers for a dead-lettered record, to append to its original headers.

    `topic`/`partition`/`offset` locate the original record; `error` is what made it fail
    (its class, message and traceback become headers); `class_name` names the component that
    failed, as Connect's `class.name` does.
    """
    values = [
        (DLQ_ORIGINAL_TOPIC, topic),
        (DLQ_ORIGINAL_PARTITION, str(partition)),
        (DLQ_ORIGINAL_OFFSET, str(offset)),
        (DLQ_CONNECTOR_NAME, connector_name),
        (DLQ_TASK_ID, str(task_id)),
        (DLQ_STAGE, stage),
    ]
    if class_name is not None:
        values.append((DLQ_CLASS_NAME, class_name))
    values += [
        (DLQ_EXCEPTION_CLASS_NAME, _qualified_name(type(error))),
        (DLQ_EXCEPTION_MESSAGE, str(error)),
        (DLQ_EXCEPTION_STACKTRACE, "".join(traceback.format_exception(error))),
    ]
    return [(name, _utf8(value)) for name, value in values]


def cloudevent_headers(
    *,
    id: str,  # noqa: A002 - the CloudEvents attribute name
    source: str,
    type: str,  # noqa: A002 - the CloudEvents attribute name
    time: datetime,
    subject: str | None = None,
) -> Headers:
    """CloudEvents binary-mode headers for one output event.

    `id` must be unique per `source` (e.g. the command id for a result); `time` must be
    timezone-aware and is written as RFC 3339 in UTC; `subject` is optional (e.g. the agent id).
    """
    for name, value in (("id", id), ("source", source), ("type", type)):
        if not value:
            raise ValueError(f"CloudEvents attribute `{name}` must not be empty")
    if time.utcoffset() is None:
        raise ValueError("CloudEvents attribute `time` must be timezone-aware")
    headers = [
        _SPECVERSION,
        (CE_ID, _utf8(id)),
        (CE_SOURCE, _constant(source)),
        (CE_TYPE, _constant(type)),
        (CE_TIME, time.astimezone(UTC).isoformat().replace("+00:00", "Z").encode()),
    ]
    if subject is not None:
        headers.append((CE_SUBJECT, _utf8(subject)))
    headers.append(_JSON_CONTENT)
    return headers


# A producer writes these per event: what never changes is encoded once.
_SPECVERSION = (CE_SPECVERSION, CLOUDEVENTS_SPECVERSION.encode())
_JSON_CONTENT = (CONTENT_TYPE, JSON_CONTENT_TYPE.encode())


@functools.lru_cache(maxsize=64)
def _constant(text: str) -> bytes:
    """A source or type: the same few values for every event of a producer."""
    return _utf8(text)


def _qualified_name(cls: type[BaseException]) -> str:
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _utf8(text: str) -> bytes:
    # Exception messages may quote arbitrary input; never fail while reporting a failure.
    return text.encode("utf-8", "backslashreplace")
