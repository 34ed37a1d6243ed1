"""Which command each request of the emulator's log served.

The workload makes every request name its command (`chaos.workload`): a speak's `text` and a
call's `name` are the command id; an agent.start's `name` and the agent an agent.stop addresses
name the agent, whose one start and one stop they are (the agent's id is mapped to its name
through the results, which carry both). Reads (the worker resolving a name, reconciling) serve
no command and are left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from contracts import ResultEvent
from devtools.workload import Sent

# the body field naming the command (speak, call.start) or its agent (agent.start)
NAMING_FIELD = {"agent.speak": "text", "call.start": "name", "agent.start": "name"}
BY_AGENT = frozenset({"agent.start", "agent.stop"})  # named by their agent, not their id


class Call(NamedTuple):
    """A request that served a command: when it reached the emulator and the status it
    answered (0: the connection was closed without an answer)."""

    command_id: str
    timestamp: float
    status: int

    @property
    def reached(self) -> bool:
        """It got past the refusals the emulator injects (429, 5xx), which do nothing."""
        return self.status != 429 and self.status < 500

    @property
    def executed(self) -> bool:
        """The operation ran: a 2xx, or a connection the suite's drop rules closed after it ran."""
        return self.status == 0 or 200 <= self.status < 300


def attribute(
    log: Iterable[dict[str, Any]], sent: Iterable[Sent], results: Iterable[ResultEvent]
) -> list[Call]:
    """The requests of `log` (the emulator's `GET /_emulator/requests`) that served a command
    of `sent`, in the order they arrived (the log takes a request once it is answered)."""
    commands: dict[tuple[str, str | None], str] = {
        (s.operation, s.key.decode() if s.operation in BY_AGENT else s.command_id): s.command_id
        for s in sent
        if s.operation and s.command_id
    }
    agents = {r.agent_id: r.name for r in results if r.agent_id and r.name}
    calls = []
    for request in log:
        operation = request["operation"]
        command_id = commands.get((operation, _naming(request, agents)))
        if command_id is not None:
            calls.append(Call(command_id, request["timestamp"], request["status"]))
    return sorted(calls, key=lambda call: call.timestamp)


def _naming(request: dict[str, Any], agents: dict[str, str]) -> str | None:
    """The command id or agent name a logged request carries."""
    if request["operation"] == "agent.stop":  # POST .../agents/{agent_id}/leave, no body
        return agents.get(request["path"].rpartition("/agents/")[2].split("/")[0])
    body = request["body"]
    field = NAMING_FIELD.get(request["operation"])
    return body.get(field) if field and isinstance(body, dict) else None
