"""What the agent side needs from Kafka: a way to put agent-state records on the state topic.

Webhooks, reconciliation and housekeeping publish through `StatePublisher`, so `worker.agents`
depends on no pipeline module (the pipeline depends on it, through the executor); the
composition root (`worker.app`) adapts the pipeline's output records and publisher to this port.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from contracts import AgentStateEvent


class Refused(NamedTuple):
    """A state record the broker refused for good: where it was going, its key, and why."""

    topic: str
    agent_id: str
    error: BaseException


class StatePublisher(Protocol):
    """Delivers agent-state records (keyed by agent id, the compaction key) and tombstones."""

    async def publish(
        self, states: Sequence[AgentStateEvent], tombstones: Sequence[str] = ()
    ) -> list[Refused]:
        """Deliver `states` and a tombstone for each agent id in `tombstones`.

        Transient failures are retried until delivered; returns the records refused for good.
        """
        ...
