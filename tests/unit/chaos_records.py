"""Hand-made records and results for the chaos suite's unit tests (no broker)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord

from contracts import ErrorInfo, Outcome, ResultEvent
from contracts.headers import STAGE_DECODE, dlq_headers

TOPIC = "chaos.commands"
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def record(
    partition: int,
    offset: int,
    *,
    seconds: float = 0.0,
    key: bytes | None = b"k",
    value: bytes | None = b"v",
    headers: list[tuple[str, bytes]] | None = None,
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        TOPIC, partition, offset, int(seconds * 1000), 0, key, value, None, 0, 0, headers or []
    )


def result(
    command_id: str, code: str | None = None, *, outcome: Outcome | None = None, **fields: Any
) -> ResultEvent:
    """A result of `command_id`: failed with `code` when given, else succeeded, unless
    `outcome` says; `fields`: more of its fields (`reconciled`, `agent_id`, ...)."""
    error = ErrorInfo(code=code, message=code) if code else None
    return ResultEvent(
        command_id=command_id,
        command="agent.speak",
        outcome=outcome or ("failed" if code else "succeeded"),
        error=error,
        **fields,
        attempts=1,
        received_at=NOW,
        completed_at=NOW,
        duration_ms=0.0,
    )


def dead_letter(original: ConsumerRecord[bytes, bytes]) -> ConsumerRecord[bytes, bytes]:
    headers = dlq_headers(
        topic=original.topic,
        partition=original.partition,
        offset=original.offset,
        stage=STAGE_DECODE,
        error=ValueError("bad"),
    )
    return record(0, 0, key=original.key, value=original.value, headers=headers)
