"""The agent directory shared through the compacted agent-state topic.

Every replica (and a restarted worker) rebuilds the same `AgentDirectory` by following the
topic from the beginning (`worker.pipeline.followers.TopicFollower` with `StateRecords`): the
lifecycle model merges observations in any order to the same result, and a tombstone drops an
agent that has ended.

Compaction keeps only the last record of each agent, so that record must be the newest
observation. Publishers check the directory before they publish, but two workers may publish
at the same moment, each without the other's event, and the older may land last. `StateRecords`
notes each agent whose last record lost to an earlier one; `worker.agents.housekeeping`
publishes the winning state again for those, once the topic has had time to catch up.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from contracts import AgentStateEvent, EventDecodeError, decode_agent_state
from worker.agents.directory import AgentDirectory, AgentKey, agent_key
from worker.kafka.ports import Record

log = structlog.get_logger(__name__)


class StateRecords:
    """A follower's `apply` for the agent-state topic; remembers agents whose last record lost."""

    def __init__(
        self, directory: AgentDirectory, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._directory = directory
        self._clock = clock
        self._outdated: dict[AgentKey, float] = {}  # agent → when its last record lost

    def __call__(self, record: Record) -> bool:
        """Apply one record; returns whether it was a state event the directory could read."""
        if record.value is None:
            if record.key is not None:
                agent_id = record.key.decode(errors="replace")
                for app_id in self._directory.apps_of(agent_id):
                    self._outdated.pop((app_id, agent_id), None)
                self._directory.forget_ended(agent_id, self._clock())
            return False
        try:
            event = decode_agent_state(record.value)
        except EventDecodeError as exc:
            log.warning("state_event_undecodable", offset=record.offset, error=str(exc))
            return False
        if self._directory.observe(event).won:
            self._outdated.pop(agent_key(event), None)
        else:
            self._outdated.setdefault(agent_key(event), self._clock())
        return True

    def outdated(self, for_seconds: float) -> list[AgentStateEvent]:
        """The states of agents whose last record has been older than them for `for_seconds`."""
        cutoff = self._clock() - for_seconds
        states = []
        for key, since in list(self._outdated.items()):
            if since > cutoff:
                continue
            del self._outdated[key]
            state = self._directory.state(*key)
            if state is not None:
                states.append(state)
        return states
