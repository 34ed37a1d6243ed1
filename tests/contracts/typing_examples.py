"""Checked by mypy, not run: what a consumer of the package gets from the type checker.

If `Command` stopped being a closed union, or a field lost its precise type, `uv run mypy`
would fail on this file.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, assert_never, assert_type

from msgspec import UnsetType

from contracts import (
    AgentGet,
    AgentHistory,
    AgentInterrupt,
    AgentList,
    AgentSpeak,
    AgentStart,
    AgentStop,
    AgentThink,
    AgentTurns,
    AgentUpdate,
    CallGet,
    CallHangup,
    CallList,
    CallStart,
    Command,
    NumberAdd,
    NumberDelete,
    NumberGet,
    NumberList,
    NumberUpdate,
    ResultEvent,
    decode_command,
    decode_result,
)


def dispatch(command: Command) -> str:
    """A `match` over every command is exhaustive; a new command makes this fail to check."""
    match command:
        case AgentStart() | CallStart():
            return command.name
        case AgentSpeak(text=text) | AgentThink(text=text):
            return text
        case (
            AgentStop() | AgentUpdate() | AgentInterrupt() | AgentGet() | AgentHistory()
            | AgentTurns()
        ):  # fmt: skip
            return command.agent_id or command.name or ""
        case CallHangup() | CallGet():
            return command.agent_id
        case NumberGet() | NumberUpdate() | NumberDelete() | NumberAdd():
            return command.phone_number
        case AgentList() | CallList() | NumberList():
            return command.id
        case _:
            assert_never(command)


def field_types(data: bytes) -> None:
    decoded = decode_command(data)
    assert_type(decoded.command, Command)
    assert_type(decoded.rest, dict[str, Any])
    if isinstance(decoded.command, AgentSpeak):
        assert_type(decoded.command.priority, Literal["INTERRUPT", "APPEND", "IGNORE"] | UnsetType)
        assert_type(decoded.command.expires_at, datetime | None)
    result = decode_result(data)
    assert_type(result, ResultEvent)
    assert_type(result.received_at, datetime)
