"""Command streams for the whole-worker tests."""

from __future__ import annotations

from typing import Any

from devtools.workload import agent_properties

SPEAKS_PER_AGENT = 6


def agent_lifecycle(prefix: str, agents: int) -> list[dict[str, Any]]:
    """Per agent: start, speaks numbered in order, think, interrupt, update, get, stop.

    Commands of different agents are interleaved the way independent producers would write
    them, so per-key order is only preserved if the worker preserves it.
    """
    per_agent: list[list[dict[str, Any]]] = []
    for a in range(agents):
        name = f"{prefix}-agent-{a}"
        steps: list[dict[str, Any]] = [
            {"command": "agent.start", "name": name, "properties": agent_properties(name)}
        ]
        steps += [
            {"command": "agent.speak", "name": name, "text": f"{name} says {i}"}
            for i in range(SPEAKS_PER_AGENT)
        ]
        steps += [
            {"command": "agent.think", "name": name, "text": "consider it"},
            {"command": "agent.interrupt", "name": name},
            {"command": "agent.update", "name": name, "properties": {"token": "new-token"}},
            {"command": "agent.get", "name": name},
            {"command": "agent.stop", "name": name},
        ]
        per_agent.append(steps)
    commands: list[dict[str, Any]] = []
    for step in range(max(len(s) for s in per_agent)):
        for a, steps in enumerate(per_agent):
            if step < len(steps):
                commands.append({**steps[step], "id": f"{prefix}-{a}-{step}"})
    return commands


def speaks(prefix: str, agent_ids: list[str], per_agent: int) -> list[dict[str, Any]]:
    """`per_agent` speaks to each agent by id, interleaved across agents; each `text` is the
    command's own id, so every call the API receives can be attributed to its command."""
    commands: list[dict[str, Any]] = []
    for step in range(per_agent):
        for a, agent_id in enumerate(agent_ids):
            command_id = f"{prefix}-{a}-{step}"
            commands.append(
                {
                    "command": "agent.speak",
                    "id": command_id,
                    "agent_id": agent_id,
                    "text": command_id,
                }
            )
    return commands
