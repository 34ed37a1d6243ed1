"""Agent names → agent ids: what lets `agent.*` commands address an agent by `name`.

The pipeline's directory (fed from the compacted agent-state topic) implements `NameDirectory`;
`InMemoryNames` serves `convoai-worker exec` and tests. The executor records every state it
causes at once, so a command that follows an agent.start on the same key finds the new id
without waiting for the state topic to come round.
"""

from __future__ import annotations

from typing import Protocol


class NameDirectory(Protocol):
    """Where the executor resolves names and records what its commands did to agents."""

    def resolve(self, app_id: str, name: str) -> str | None:
        """The id of the agent most recently known under `name` in `app_id`."""

    def record(self, app_id: str, name: str | None, agent_id: str, status: str) -> None:
        """Remember an agent's id, name (when known) and status."""

    def status(self, app_id: str, agent_id: str) -> str | None:
        """The agent's last known status."""


class InMemoryNames:
    """A `NameDirectory` held in two dicts."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, str], str] = {}
        self._statuses: dict[tuple[str, str], str] = {}

    def resolve(self, app_id: str, name: str) -> str | None:
        """The id last recorded under `name`."""
        return self._ids.get((app_id, name))

    def record(self, app_id: str, name: str | None, agent_id: str, status: str) -> None:
        """Remember the agent; a name moves to the newest agent that carries it."""
        if name:
            self._ids[(app_id, name)] = agent_id
        self._statuses[(app_id, agent_id)] = status

    def status(self, app_id: str, agent_id: str) -> str | None:
        """The status last recorded for the agent."""
        return self._statuses.get((app_id, agent_id))
