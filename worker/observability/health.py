"""Liveness and readiness from the pipeline's own signals.

Liveness answers "should Kubernetes restart this pod?": yes when the event loop is blocked, or
when the consumer owns partitions with lag and has made no progress for `stall_timeout_seconds`
— the stuck-consumer case (a wedged fetch or coordinator) that a restart fixes. Readiness
answers "is this pod doing its job?": the producer is connected and the consumer has joined the
group (with partitions, or idle because the group has more members than partitions).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from worker.settings import Settings


class HealthReport(msgspec.Struct, frozen=True):
    """A probe's verdict, served as the JSON body of /livez and /readyz."""

    ok: bool
    reason: str
    details: dict[str, Any] = msgspec.field(default_factory=dict)


class Health:
    """State the pipeline reports into; probes read it."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self._stall_after = settings.stall_timeout_seconds
        self._loop_block = settings.loop_block_seconds
        self._clock = clock
        now = clock()
        self._producer_ready = False
        self._joined = False
        self._assigned = 0
        self._lag = 0
        self._last_progress = now
        self._loop_lag = 0.0
        self._loop_measured = now

    def producer_ready(self, ok: bool) -> None:
        """The producer connected (or was closed)."""
        self._producer_ready = ok

    def group_state(self, *, joined: bool, assigned_partitions: int) -> None:
        """The consumer's group membership after a rebalance."""
        if assigned_partitions != self._assigned:
            self._last_progress = self._clock()  # a new assignment starts a fresh stall window
        self._joined = joined
        self._assigned = assigned_partitions

    def progress(self) -> None:
        """A command finished or an offset commit advanced."""
        self._last_progress = self._clock()

    def lag(self, records: int) -> None:
        """Total lag of the assigned partitions."""
        if records == 0:
            self._last_progress = self._clock()  # nothing to do is not a stall
        self._lag = records

    def loop_lag(self, seconds: float) -> None:
        """Latest event-loop scheduling delay."""
        self._loop_lag = seconds
        self._loop_measured = self._clock()

    def liveness(self) -> HealthReport:
        """Alive unless the loop is blocked or consumption is stuck."""
        now = self._clock()
        details = {
            "loop_lag_seconds": round(self._loop_lag, 4),
            "lag_records": self._lag,
            "seconds_since_progress": round(now - self._last_progress, 1),
            "assigned_partitions": self._assigned,
        }
        if self._loop_lag > self._loop_block or now - self._loop_measured > self._loop_block * 2:
            return HealthReport(False, "event loop blocked", details)
        if self._assigned and self._lag > 0 and now - self._last_progress > self._stall_after:
            return HealthReport(False, "consumer stalled: lag without progress", details)
        return HealthReport(True, "ok", details)

    def readiness(self) -> HealthReport:
        """Ready when the producer is up and the consumer group is joined."""
        details = {
            "producer": self._producer_ready,
            "joined": self._joined,
            "assigned_partitions": self._assigned,
        }
        if not self._producer_ready:
            return HealthReport(False, "producer not connected", details)
        if not self._joined:
            return HealthReport(False, "consumer group not joined", details)
        reason = "ok" if self._assigned else "ok: joined, no partitions assigned (idle member)"
        return HealthReport(True, reason, details)
