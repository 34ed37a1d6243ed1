"""The agent directory shared through the state topic.

`agent.*` commands may address an agent by the `name` it was started with. The id the API gave
is published on the compacted agent-state topic, so every replica (and a restarted worker)
rebuilds the same `AgentDirectory` by following that topic from the beginning
(`worker.pipeline.followers.TopicFollower` with `observe_states`).
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from contracts import EventDecodeError, decode_agent_state
from worker.execution.names import AgentDirectory
from worker.kafka.ports import Record

log = structlog.get_logger(__name__)


def observe_states(directory: AgentDirectory) -> Callable[[Record], bool]:
    """A follower's `apply`: feed each agent-state record into `directory`."""

    def observe(record: Record) -> bool:
        if record.value is None:
            return False  # tombstone: compaction removed the agent
        try:
            directory.observe(decode_agent_state(record.value))
        except EventDecodeError as exc:
            log.warning("state_event_undecodable", offset=record.offset, error=str(exc))
            return False
        return True

    return observe
