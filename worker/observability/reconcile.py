"""Periodic reconciliation: is what this worker believes about its agents still true?

Webhooks can be missed (not configured, endpoint unreachable, Agora gave up after 3 retries).
Every `interval_seconds` the reconciler asks the API for the status of each agent this worker
started and believes alive, and publishes a state event (`source="reconcile"`) when the API
disagrees — typically an agent that left on idle timeout. A 404 means the agent is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol

import structlog

from contracts import AgentStateEvent
from worker.observability.webhooks import StateSink

log = structlog.get_logger(__name__)

MAX_CONCURRENT_CHECKS = 16  # keep reconciliation a trickle next to real commands

AgentStatusCheck = Callable[[str, str], Awaitable[str | None]]  # (app_id, agent_id) -> status


class KnownAgents(Protocol):
    """The agents this worker started and believes alive."""

    def alive(self) -> Iterable[tuple[str, str, str | None, str]]: ...


class Reconciler:
    """Compares believed and actual agent status on an interval (0 disables it)."""

    def __init__(
        self,
        interval_seconds: float,
        agents: KnownAgents,
        check_agent: AgentStatusCheck,
        sink: StateSink,
    ) -> None:
        self._interval = interval_seconds
        self._agents = agents
        self._check = check_agent
        self._sink = sink
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_CHECKS)

    async def run(self) -> None:
        """Reconcile forever (returns at once when disabled)."""
        if self._interval <= 0:
            return
        while True:
            await asyncio.sleep(self._interval)
            changed = await self.reconcile_once()
            if changed:
                log.info("agents_reconciled", changed=changed)

    async def reconcile_once(self) -> int:
        """One pass; returns how many state events were published."""
        results = await asyncio.gather(
            *(self._one(*agent) for agent in list(self._agents.alive())),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result
            if isinstance(result, Exception):
                log.warning("reconcile_check_failed", error=repr(result))
        return sum(1 for r in results if r is True)

    async def _one(self, app_id: str, agent_id: str, name: str | None, believed: str) -> bool:
        async with self._slots:
            actual = await self._check(app_id, agent_id)
        if actual is None or actual == believed:
            return False
        await self._sink.publish_state(
            AgentStateEvent(
                agent_id=agent_id,
                app_id=app_id or None,
                name=name,
                status=actual,
                source="reconcile",
                message=f"API reports {actual}, last known {believed}",
                observed_at=datetime.now(UTC),
            )
        )
        return True
