"""The records the worker writes: results, agent-state events, tombstones and dead letters.

Every output is built so that its content cannot stop the pipeline: header values are bytes
(a header without a value becomes empty), a record without key and value gets a value, and
sizes are bounded. A result whose `data` (or `error.details`) exceeds
`CONVOAI_MAX_RESULT_BYTES` carries a `TruncatedData` object instead (`worker.pipeline.oversize`:
a list keeps its cursor, a history says how to read it in parts); a dead letter that would
exceed `CONVOAI_MAX_RECORD_BYTES` carries the head of the original value plus its size and
SHA-256 in headers.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import NamedTuple

import msgspec

from contracts import AgentStateEvent, ResultEvent, TruncatedData, encode_event
from contracts.headers import (
    AGENT_STATE_EVENT_TYPE,
    COMMAND_RESULT_EVENT_TYPE,
    DLQ_EXCEPTION_MESSAGE,
    DLQ_EXCEPTION_STACKTRACE,
    DLQ_HEADERS_DROPPED,
    DLQ_NULL_VALUE,
    DLQ_ORIGINAL_BYTES,
    DLQ_ORIGINAL_SHA256,
    DLQ_REASON,
    DLQ_TRUNCATED,
    REPLAY,
    STAGE_DECODE,
    STAGE_EXECUTE,
    cloudevent_headers,
    dlq_headers,
    parse_replay,
)
from worker.dlq_redaction import dead_letter_copy
from worker.kafka.ports import Record
from worker.pipeline.oversize import stand_in, truncated
from worker.settings import Settings

Header = tuple[str, bytes]

RECORD_OVERHEAD_BYTES = 512  # batch framing, timestamps and varints, generously
HEADER_LIMITS = {DLQ_EXCEPTION_MESSAGE: 2048, DLQ_EXCEPTION_STACKTRACE: 8192}
MAX_KEY_BYTES_WHEN_SHRUNK = 1024
MAX_FIELD_CHARS_WHEN_SHRUNK = 1024
EXECUTION_REASONS = frozenset({"retries_exhausted", "internal_error"})  # dead letters of a run


class OutputRecord(NamedTuple):
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[Header]

    @property
    def size(self) -> int:
        """About how many bytes the record takes in a produce request."""
        headers = sum(len(name) + len(value) for name, value in self.headers)
        return RECORD_OVERHEAD_BYTES + len(self.key or b"") + len(self.value or b"") + headers


class Outputs:
    """Builds output records from events and failed input records."""

    def __init__(self, settings: Settings) -> None:
        self._results = settings.topic_results
        self._state = settings.topic_state
        self.dlq_topic = settings.topic_dlq
        self._max_result = settings.max_result_bytes
        self._max_record = settings.max_record_bytes
        self._connector = settings.group_id
        self._source = f"convoai-worker/{settings.group_id}"
        self._letter_copy = dead_letter_copy(settings)  # the record, or its redacted copy

    def result(
        self, event: ResultEvent, key: bytes | None, replay: str | None = None
    ) -> OutputRecord:
        """The result record; `data` or `error.details` over the budget become `TruncatedData`.

        `replay` is the replay marker of a command re-produced from the dead-letter topic: the
        result carries it as a header (every worker's dedupe memory learns the replay is done),
        and its CloudEvents id differs from the first result's.
        """
        value = encode_event(event)
        if len(value) > self._max_result:
            event = self._within_budget(event)
            value = encode_event(event)
        record = self._result_record(event, key, value, replay)
        # results fit by far unless bodies or text fields are huge: only then count the headers
        if len(value) > self._max_record // 2 and record.size > self._max_record:
            return self.shrunk_result(event, key, replay)
        return record

    def _within_budget(self, event: ResultEvent) -> ResultEvent:
        """`event` with its API bodies (`data`, `error.details`) replaced where over budget."""
        data, error = event.data, event.error
        if data is not None:
            encoded = msgspec.json.encode(data)
            if len(encoded) > self._max_result:
                data = stand_in(event.command, data, encoded, self._max_result)
        if error is not None and error.details is not None:
            encoded = msgspec.json.encode(error.details)
            if len(encoded) > self._max_result:
                error = msgspec.structs.replace(error, details=truncated(encoded))
        return msgspec.structs.replace(event, data=data, error=error)

    def shrunk_result(
        self, event: ResultEvent, key: bytes | None, replay: str | None = None
    ) -> OutputRecord:
        """The result with every text field cut short: for results the broker refused."""
        error = event.error
        if error is not None:
            error = msgspec.structs.replace(
                error,
                message=_cut(error.message),
                reason=_cut_or_none(error.reason),
                details=_truncated_or_none(error.details),
            )
        small = msgspec.structs.replace(
            event,
            command_id=_cut(event.command_id),
            name=_cut_or_none(event.name),
            correlation_id=_cut_or_none(event.correlation_id),
            app_id=_cut_or_none(event.app_id),
            agent_id=_cut_or_none(event.agent_id),
            phone_number=_cut_or_none(event.phone_number),
            data=_truncated_or_none(event.data),
            error=error,
            request_id=_cut_or_none(event.request_id),
        )
        key = key[:MAX_KEY_BYTES_WHEN_SHRUNK] if key is not None else None
        return self._result_record(small, key, encode_event(small), replay)

    def _result_record(
        self, event: ResultEvent, key: bytes | None, value: bytes, replay: str | None
    ) -> OutputRecord:
        headers = cloudevent_headers(
            id=event.command_id if replay is None else f"{event.command_id}@{replay}",
            source=self._source,
            type=COMMAND_RESULT_EVENT_TYPE,
            time=event.completed_at,
            subject=event.command or None,
        )
        if replay is not None:
            headers.append((REPLAY, replay.encode()))
        return OutputRecord(self._results, key, value, headers)

    def state(self, event: AgentStateEvent) -> OutputRecord:
        """An agent-state record keyed by agent id (the compaction key)."""
        headers = cloudevent_headers(
            id=uuid.uuid4().hex,
            source=self._source,
            type=AGENT_STATE_EVENT_TYPE,
            time=event.observed_at,
            subject=event.agent_id,
        )
        return OutputRecord(self._state, event.agent_id.encode(), encode_event(event), headers)

    def tombstone(self, agent_id: str) -> OutputRecord:
        """The record that makes compaction drop an agent from the agent-state topic."""
        return OutputRecord(self._state, agent_id.encode(), None, [])

    def dead_letter(
        self, record: Record, reason: str, error: BaseException, *, keep_value: bool = True
    ) -> OutputRecord:
        """The original record with Kafka Connect error headers, cut to fit when too large.

        `keep_value=False` drops the value entirely (size and hash stay in the headers): for
        when the broker refused a copy that fit this worker's own limit.
        """
        record = self._letter_copy(record)
        context = [
            (name, value[: HEADER_LIMITS[name]] if name in HEADER_LIMITS else value)
            for name, value in dlq_headers(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                stage=STAGE_EXECUTE if reason in EXECUTION_REASONS else STAGE_DECODE,
                error=error,
                class_name=f"worker.pipeline.{reason}",
                connector_name=self._connector,
            )
        ]
        context.append((DLQ_REASON, reason.encode()))
        # a replay header the worker did not write is not copied (it can be 300 KB of anything)
        original = [
            (name, value or b"")
            for name, value in record.headers
            if name != REPLAY or not parse_replay([(name, value)], self.dlq_topic).refusal
        ]
        key, value = record.key, record.value
        if key is None and value is None:
            value = b""  # a record needs a key or a value
        if record.value is None:
            context.append((DLQ_NULL_VALUE, b"true"))
        letter = OutputRecord(self.dlq_topic, key, value, [*original, *context])
        if letter.size <= self._max_record and keep_value:
            return letter
        return self._cut_letter(letter, original, context, keep_value=keep_value)

    def _cut_letter(
        self,
        letter: OutputRecord,
        original: list[Header],
        context: list[Header],
        *,
        keep_value: bool,
    ) -> OutputRecord:
        value = letter.value or b""
        about = [
            (DLQ_ORIGINAL_BYTES, str(len(value)).encode()),
            (DLQ_ORIGINAL_SHA256, hashlib.sha256(value).hexdigest().encode()),
            (DLQ_TRUNCATED, b"true"),
        ]
        key = letter.key
        headers = [*original, *context, *about]
        shell = OutputRecord(self.dlq_topic, key, b"", headers)
        if shell.size > self._max_record:
            # the original key and headers alone are too large: keep what identifies the record
            dropped = [(DLQ_HEADERS_DROPPED, str(len(original)).encode())]
            headers = [*context, *about, *dropped]
            key = key[:MAX_KEY_BYTES_WHEN_SHRUNK] if key is not None else None
            shell = OutputRecord(self.dlq_topic, key, b"", headers)
        room = max(0, self._max_record - shell.size) if keep_value else 0
        return OutputRecord(self.dlq_topic, key, value[:room], headers)


def _truncated_or_none(body: object) -> TruncatedData | None:
    return None if body is None else truncated(msgspec.json.encode(body))


def _cut(text: str) -> str:
    return text if len(text) <= MAX_FIELD_CHARS_WHEN_SHRUNK else text[:MAX_FIELD_CHARS_WHEN_SHRUNK]


def _cut_or_none(text: str | None) -> str | None:
    return None if text is None else _cut(text)
