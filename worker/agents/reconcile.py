"""Periodic reconciliation: is what this worker believes about its agents still true?

Webhooks can be missed (not configured, endpoint unreachable, NCS gave up after its retries).
Every `interval_seconds` the reconciler asks the API for the status of each agent this worker
started and has not seen end (STOPPING included: that is how a stop is confirmed without a
webhook), and hands what the API says to the state sink as a `reconcile` observation whenever
it differs from the belief — typically an agent that left on idle timeout. One agent's failed
check or publish is logged and skipped; the next pass tries again.

A command may change an agent while its status is being read. The observation carries the time
the read started, and the sink publishes it only if the lifecycle model ranks it above what is
known by then, so a command's newer state (a stop, say) is never overwritten by an older read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol

import structlog

from contracts import AgentStateEvent
from worker.agents.webhooks import StateSink

log = structlog.get_logger(__name__)

MAX_CONCURRENT_CHECKS = 8  # keep reconciliation a trickle next to the API calls of commands

AgentStatusCheck = Callable[[str, str], Awaitable[str | None]]
"""(app_id, agent_id) → the API's status name ("STOPPED" for a 404), None when it cannot tell."""


class AgentDirectoryView(Protocol):
    """What the reconciler reads of the pipeline's agent directory."""

    def alive(self) -> Iterable[AgentStateEvent]:
        """States of the agents this worker started that have not ended."""
        ...


class Reconciler:
    """Compares believed and actual agent status every `interval_seconds` (0 disables it)."""

    def __init__(
        self,
        interval_seconds: float,
        directory: AgentDirectoryView,
        check_agent: AgentStatusCheck,
        sink: StateSink,
        *,
        concurrency: int = MAX_CONCURRENT_CHECKS,
    ) -> None:
        self._interval = interval_seconds
        self._directory = directory
        self._check = check_agent
        self._sink = sink
        self._slots = asyncio.Semaphore(concurrency)

    async def run(self) -> None:
        """Reconcile until cancelled; returns at once when disabled."""
        if self._interval <= 0:
            return
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.reconcile_once()
            except Exception:  # a broken pass must not end reconciliation for good
                log.exception("reconcile_pass_failed")

    async def reconcile_once(self) -> int:
        """One pass over the agents believed alive; returns how many corrections were published.

        Each agent is read under its own App ID; one known without an App ID cannot be read
        under any (the default App ID might be another tenant's) and is left alone.
        """
        agents = [agent for agent in self._directory.alive() if agent.app_id]
        corrected = sum(await asyncio.gather(*(self._reconcile(agent) for agent in agents)))
        log.debug("reconcile_pass_done", checked=len(agents), corrected=corrected)
        return corrected

    async def _reconcile(self, believed: AgentStateEvent) -> bool:
        app_id, agent_id = believed.app_id or "", believed.agent_id  # set: see reconcile_once
        context = {"app_id": app_id, "agent_id": agent_id, "believed": believed.status}
        try:
            async with self._slots:
                read_at = datetime.now(UTC)
                actual = await self._check(app_id, agent_id)
            if actual is None or actual == believed.status:
                return False
            published = await self._sink.publish_state(
                AgentStateEvent(
                    agent_id=agent_id,
                    app_id=believed.app_id,
                    name=believed.name,
                    status=actual,
                    source="reconcile",
                    channel=believed.channel,
                    message=f"API reports {actual}; last known status was {believed.status}",
                    observed_at=read_at,
                    labels=believed.labels,
                )
            )
        except Exception:  # one agent's API error or failed publish must not stop the pass
            log.exception("reconcile_agent_failed", **context)
            return False
        if published:
            log.info("agent_state_reconciled", actual=actual, **context)
        return published
