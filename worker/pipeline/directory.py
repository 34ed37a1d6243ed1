"""Where agents are: name → agent id and last known status, shared through the state topic.

`agent.*` commands may address an agent by the `name` it was started with. The id the API gave
is published on the compacted agent-state topic, so every replica (and a restarted worker)
rebuilds the same map by reading that topic from the beginning and then following it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from contracts import AgentStateEvent, EventDecodeError, decode_agent_state
from worker.pipeline.replay import all_partitions, replay_to_end
from worker.settings import Settings

log = structlog.get_logger(__name__)

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


class StateFollower:
    """Reads the state topic from the beginning into an `AgentDirectory`, then keeps following.

    No consumer group: every replica reads every partition, and nothing is committed.
    """

    def __init__(self, settings: Settings, directory: AgentDirectory) -> None:
        self._settings = settings
        self._directory = directory
        self._consumer = AIOKafkaConsumer(
            settings.topic_state,
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id=f"{settings.group_id}-state-follower",
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Load the topic up to its current end; return the number of events read."""
        consumer = self._consumer
        await consumer.start()
        tps = await all_partitions(consumer)
        await consumer.seek_to_beginning(*tps)
        loaded = await replay_to_end(consumer, self._apply)
        self._task = asyncio.create_task(self._follow(), name="state-follower")
        return loaded

    async def stop(self) -> None:
        """Stop following and close the consumer."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    async def _follow(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    self._apply(record)

    def _apply(self, record: ConsumerRecord) -> bool:
        if record.value is None:
            return False  # tombstone: compaction removed the agent
        try:
            self._directory.observe(decode_agent_state(record.value))
        except EventDecodeError as exc:
            log.warning("state_event_undecodable", offset=record.offset, error=str(exc))
            return False
        return True
