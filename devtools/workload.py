"""Commands the benchmarks and the component tests send."""

from __future__ import annotations

from typing import Any


def speaks(prefix: str, count: int, agents: int) -> list[dict[str, Any]]:
    """`count` speak commands over `agents` agent ids; each text is the command id."""
    return [
        {
            "command": "agent.speak",
            "id": f"{prefix}-{i}",
            "agent_id": f"{prefix}-agent-{i % agents}",
            "text": f"{prefix}-{i}",
        }
        for i in range(count)
    ]
