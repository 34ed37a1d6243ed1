"""One line per output-topic record, for people or (`as_json`) for scripts.

Every record renders, whatever it holds: a tombstone on the compacted agent-state topic (an
agent forgotten after its retention), or a record that is not a valid event (written by
something else) becomes a line saying so, never an exception that ends `tail`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from contracts import (
    AgentStateEvent,
    EventDecodeError,
    ResultEvent,
    decode_agent_state,
    decode_result,
)
from worker.commands import dead_letters
from worker.kafka.ports import Record
from worker.settings import Settings


def render(record: Record, settings: Settings, *, as_json: bool) -> tuple[str, bool]:
    """One output line for a record, and whether it was a valid result event."""
    if record.topic == settings.topic_results:
        return _result(record, as_json=as_json)
    if record.topic == settings.topic_state:
        return _state(record, as_json=as_json), False
    letter = dead_letters.parse(record)
    if as_json:
        return _json(letter.as_json()), False
    return f"{_clock(record.timestamp / 1000)} dlq     {letter.source} {letter.error}", False


def _result(record: Record, *, as_json: bool) -> tuple[str, bool]:
    try:
        result = decode_result(record.value or b"")
    except EventDecodeError as error:
        return _not_an_event("result", record, error, as_json=as_json), False
    if as_json:
        return _json({"topic": "result", **msgspec.to_builtins(result)}), True
    return _describe_result(result), True


def _state(record: Record, *, as_json: bool) -> str:
    key = (record.key or b"").decode("utf-8", "replace")
    if record.value is None:
        if as_json:
            return _json({"topic": "agent-state", "agent_id": key, "tombstone": True})
        return f"{_clock(record.timestamp / 1000)} state   {key} forgotten (tombstone)"
    try:
        state = decode_agent_state(record.value)
    except EventDecodeError as error:
        return _not_an_event("agent-state", record, error, as_json=as_json)
    if as_json:
        return _json({"topic": "agent-state", **msgspec.to_builtins(state)})
    return _describe_state(state)


def _not_an_event(topic: str, record: Record, error: EventDecodeError, *, as_json: bool) -> str:
    where = f"{record.topic}[{record.partition}]@{record.offset}"
    if as_json:
        return _json({"topic": topic, "invalid": str(error), "source": where})
    return f"{_clock(record.timestamp / 1000)} {topic:<7} {where} is not an event: {error}"


def _json(payload: dict[str, Any]) -> str:
    return msgspec.json.encode(payload).decode()


def _describe_result(result: ResultEvent) -> str:
    target = f" agent={result.agent_id}" if result.agent_id else ""
    detail = f" error={result.error.code}: {result.error.message}" if result.error else ""
    took = f"({result.attempts} attempt(s), {result.duration_ms:.0f} ms)"
    return (
        f"{_clock(result.completed_at.timestamp())} result  {result.command_id} {result.command} "
        f"{result.outcome} {took}{target}{detail}"
    )


def _describe_state(state: AgentStateEvent) -> str:
    name = f" ({state.name})" if state.name else ""
    cause = f" by {state.command_id}" if state.command_id else ""
    message = f": {state.message}" if state.message else ""
    return (
        f"{_clock(state.observed_at.timestamp())} state   {state.agent_id}{name} "
        f"{state.status} via {state.source}{cause}{message}"
    )


def _clock(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%H:%M:%S")
