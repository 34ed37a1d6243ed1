"""The agent directory shared through the state topic.

`agent.*` commands may address an agent by the `name` it was started with. The id the API gave
is published on the compacted agent-state topic, so every replica (and a restarted worker)
rebuilds the same `AgentDirectory` by reading that topic from the beginning and following it.
"""

from __future__ import annotations

import asyncio

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from contracts import EventDecodeError, decode_agent_state
from worker.execution.names import AgentDirectory
from worker.pipeline.replay import all_partitions, replay_to_end
from worker.settings import Settings

log = structlog.get_logger(__name__)


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
