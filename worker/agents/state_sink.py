"""Publishing what webhooks and the reconciler observe, when it is news.

Each observation is ranked against the directory first (`worker.agents.lifecycle`): one the
directory already knows, or one older than what it knows (a "joined" notice redelivered after
the stop, a reconcile read overtaken by a command), is not published, so it cannot become the
last record of its agent on the compacted topic. The directory learns the state only once
Kafka has acknowledged it: a webhook whose publish failed is answered 503, and its redelivery
must still find something to publish.
"""

from __future__ import annotations

from contracts import AgentStateEvent
from worker.agents.directory import AgentDirectory
from worker.agents.ports import StatePublisher
from worker.errors import OutputRejectedError


class DirectoryStateSink:
    """The `StateSink` of webhooks and reconciliation."""

    def __init__(self, publisher: StatePublisher, directory: AgentDirectory) -> None:
        self._publisher = publisher
        self._directory = directory

    async def publish_state(self, event: AgentStateEvent) -> bool:
        """Publish `event` (completed with what is known) if it changes the agent's status."""
        observed = self._directory.preview(event)
        if not observed.changed:
            return False
        for refused in await self._publisher.publish([observed.state]):
            raise OutputRejectedError(refused.topic, str(refused.error))
        self._directory.observe(observed.state)
        return True
