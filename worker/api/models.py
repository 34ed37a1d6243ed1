"""Typed views of the API responses the worker reads fields from.

A result event carries the response body as the API sent it (unknown fields included); these
Structs pick out the few fields the executor acts on (the new agent's id and status, an agent's
name during a lookup, the list cursor) and fail loudly when the API sent something else.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

T = TypeVar("T", bound=msgspec.Struct)


class AgentCreated(msgspec.Struct):
    """Start and update responses (`agent_id`, `create_ts`, `status`)."""

    agent_id: str
    status: str | None = None


class AgentInfo(msgspec.Struct):
    """Get response; `name` is documented by the API docs but not by the SDK model."""

    agent_id: str
    status: str | None = None
    name: str | None = None


class AgentSummary(msgspec.Struct):
    """An item of the agent list (`name` is not documented there, but used when present)."""

    agent_id: str
    status: str | None = None
    name: str | None = None


class AgentListData(msgspec.Struct):
    """`data` of the agent list."""

    items: list[AgentSummary] = msgspec.field(default_factory=list, name="list")


class ListMeta(msgspec.Struct):
    """`meta` of a list response: `cursor` is empty or null on the last page."""

    cursor: str | None = None


class AgentPage(msgspec.Struct):
    """One page of the agent list."""

    data: AgentListData | None = None
    meta: ListMeta | None = None


class CallCreated(msgspec.Struct):
    """Outbound call response."""

    agent_id: str


def view(data: Any, model: type[T]) -> T:
    """`data` (a decoded response body) as `model`; raises `msgspec.ValidationError`."""
    return msgspec.convert(data, model)
