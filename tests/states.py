"""Agent-state events for tests: only what a test cares about has to be spelt out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from contracts import AgentStateEvent


def state_event(
    agent_id: str, status: str, observed_at: datetime, **fields: Any
) -> AgentStateEvent:
    """An observation of `agent_id` (app `app`, name `bot`, from a command unless `fields`
    say otherwise)."""
    values: dict[str, Any] = {"app_id": "app", "name": "bot", "source": "command", **fields}
    return AgentStateEvent(agent_id=agent_id, status=status, observed_at=observed_at, **values)
