"""Agent names → agent ids: what lets `agent.*` commands address an agent by `name`.

`AgentDirectory` is the one implementation: the worker feeds it from the compacted agent-state
topic (`worker.pipeline.directory.observe_states`), `convoai-worker exec` starts it empty. The
executor records every state it causes at once, so a command that follows an agent.start on the
same key finds the new id without waiting for the state topic to come round.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from contracts import AgentStateEvent


class NameDirectory(Protocol):
    """Where the executor resolves names and records what its commands did to agents."""

    def resolve(self, app_id: str, name: str) -> str | None:
        """The id of the agent most recently known under `name` in `app_id`."""

    def record(self, app_id: str, name: str | None, agent_id: str, status: str) -> None:
        """Remember an agent's id, name (when known) and status."""

    def status(self, app_id: str, agent_id: str) -> str | None:
        """The agent's last known status."""


# Statuses after which the API will not change the agent on its own.
FINAL_STATUSES = frozenset({"STOPPED", "FAILED"})


class AgentEntry:
    """What is known about one agent."""

    __slots__ = ("agent_id", "app_id", "name", "started_here", "status")

    def __init__(self, app_id: str, agent_id: str, name: str | None, status: str) -> None:
        self.app_id = app_id
        self.agent_id = agent_id
        self.name = name
        self.status = status
        self.started_here = False


class AgentDirectory:
    """In-memory directory of agents; implements the executor's `NameDirectory` protocol."""

    def __init__(self) -> None:
        self._by_id: dict[tuple[str, str], AgentEntry] = {}
        self._by_name: dict[tuple[str, str], str] = {}

    def resolve(self, app_id: str, name: str) -> str | None:
        """The id of the agent most recently started with `name` in `app_id`."""
        return self._by_name.get((app_id, name))

    def record(self, app_id: str, name: str | None, agent_id: str, status: str) -> None:
        """An outcome of this worker's own command (the reconciler watches these agents)."""
        self._update(app_id, name, agent_id, status).started_here = True

    def observe(self, event: AgentStateEvent) -> None:
        """A state event read from the topic (from any replica, webhook or reconciler)."""
        self._update(event.app_id or "", event.name, event.agent_id, event.status)

    def status(self, app_id: str, agent_id: str) -> str | None:
        """Last known status of an agent."""
        entry = self._by_id.get((app_id, agent_id))
        return entry.status if entry else None

    def alive(self) -> Iterator[tuple[str, str, str | None, str]]:
        """(app_id, agent_id, name, status) of agents this worker started and believes alive."""
        for entry in list(self._by_id.values()):
            if entry.started_here and entry.status not in FINAL_STATUSES:
                yield entry.app_id, entry.agent_id, entry.name, entry.status

    def __len__(self) -> int:
        return len(self._by_id)

    def _update(self, app_id: str, name: str | None, agent_id: str, status: str) -> AgentEntry:
        entry = self._by_id.get((app_id, agent_id))
        if entry is None:
            entry = self._by_id[(app_id, agent_id)] = AgentEntry(app_id, agent_id, name, status)
        entry.status = status
        if name:
            entry.name = name
            self._by_name[(app_id, name)] = agent_id
        return entry
