"""Keeping the agent-state topic right and bounded: repairs and tombstones.

Every `tick` seconds (about a second; jittered, so the replicas' passes rarely coincide):

- agents whose last record on the topic lost to an older one (`StateRecords.outdated`) for
  `REPAIR_AFTER_SECONDS` get their winning state published again, so compaction keeps the
  newest observation;
- agents due for forgetting (`AgentDirectory.due`: stopped and unobserved for the retention,
  or older than the maximum session plus the retention) get a tombstone and leave the
  directory, so memory, the startup replay and the compacted topic hold live and recent agents.

Every replica does this: a replica that reads another's tombstone or repair first has nothing
left to do, and one that does the same at the same moment writes a duplicate, which is
harmless (a second tombstone deletes nothing more; a repeated state changes nothing).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import structlog

from worker.agents.directory import AgentDirectory, agent_key
from worker.agents.ports import StatePublisher
from worker.agents.records import StateRecords
from worker.metrics import Metrics

log = structlog.get_logger(__name__)

REPAIR_AFTER_SECONDS = 2.0  # longer than a state event normally takes to come round
MIN_TICK_SECONDS = 0.05


class StateHousekeeper:
    """Publishes repairs and tombstones for the agent-state topic."""

    def __init__(
        self,
        directory: AgentDirectory,
        records: StateRecords,
        publisher: StatePublisher,
        metrics: Metrics,
        *,
        retention_seconds: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._directory = directory
        self._records = records
        self._publisher = publisher
        self._metrics = metrics
        self._retention = retention_seconds
        self._clock = clock
        self._sleep = sleep
        # often enough for repairs to follow soon after they are due, and for the retention
        self.tick = max(MIN_TICK_SECONDS, min(REPAIR_AFTER_SECONDS / 2, retention_seconds / 20))
        # its own generator, seeded from the process's: a simulation that seeds it repeats exactly
        self._random = random.Random(random.getrandbits(64))  # noqa: S311 - spreading replicas

    async def run(self) -> None:
        """Sweep every `tick` seconds (±50 %) until cancelled."""
        while True:
            await self._sleep(self.tick * self._random.uniform(0.5, 1.5))
            await self.sweep()

    async def sweep(self) -> None:
        """One pass: publish repairs and tombstones, then forget the tombstoned agents."""
        gone = {agent_key(state) for state in self._directory.due(self._clock(), self._retention)}
        repairs = [
            state
            for state in self._records.outdated(REPAIR_AFTER_SECONDS)
            if agent_key(state) not in gone
        ]
        self._metrics.agents_tracked.set(len(self._directory))
        if not repairs and not gone:
            return
        tombstones = sorted({agent_id for _, agent_id in gone})  # the topic's key: the agent id
        for refused in await self._publisher.publish(repairs, tombstones):
            log.error("state_record_refused", agent_id=refused.agent_id, error=repr(refused.error))
        for app_id, agent_id in gone:
            self._directory.forget(app_id, agent_id)
        self._metrics.state_upkeep("repair").inc(len(repairs))
        self._metrics.state_upkeep("tombstone").inc(len(tombstones))
        self._metrics.agents_tracked.set(len(self._directory))
        log.info("agent_state_upkeep", repaired=len(repairs), tombstoned=len(tombstones))
