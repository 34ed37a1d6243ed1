"""Liveness and readiness computed from signals the pipeline reports.

Liveness answers "would a restart help?": yes when the event loop is blocked (or its monitor
has gone quiet), or when the consumer owns partitions with a backlog and not one command has
finished for `stall_timeout_seconds` — the stuck-consumer case (a wedged fetch or group
coordinator) that a restart fixes. Progress is any command finished, so one slow key does not
make a busy worker look stuck, and an idle worker (no backlog) is never stuck.

Readiness answers "is this pod doing its job?": the producer is connected, the consumer has
joined its group (with partitions, or idle because the group has more members than the topic
has partitions), outputs are being delivered, every background task is running, and the worker
is not shutting down. The reason says which of these is missing; what went wrong (an exception,
whose text may quote a broker's or a credential's words) is in the logs, never in the answer
of a probe that anyone who reaches the port can read.

The stall window starts at the latest of: the last progress, the moment a backlog appeared, the
last change of assignment. So a consumer that was idle for an hour is not declared stuck the
instant a record arrives, and new partitions get a full window before their backlog counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from worker.settings import Settings


class HealthReport(msgspec.Struct, frozen=True, kw_only=True):
    """A probe's verdict; the JSON body of /livez and /readyz."""

    ok: bool
    reason: str
    details: dict[str, Any] = msgspec.field(default_factory=dict)


class Health:
    """State the pipeline reports into and the probes read (single event loop, no locking)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self._stall_timeout = settings.stall_timeout_seconds
        self._loop_block = settings.loop_block_seconds
        self._clock = clock
        now = clock()
        self._producer_ok = False
        self._joined = False
        self._assigned = 0
        self._backlog = 0
        self._waiting_since = now  # start of the current stall window
        self._outputs_failing = False
        self._failed_tasks: set[str] = set()
        self._stopping = False
        self._loop_lag = 0.0
        self._loop_measured_at = now  # the monitor gets one threshold of grace to start

    # ---------------------------------------------------------------- reported by the pipeline
    def producer_ready(self, ok: bool) -> None:
        """The producer connected (True) or was closed (False)."""
        self._producer_ok = ok

    def group_state(self, *, joined: bool, assigned_partitions: int) -> None:
        """Group membership after a rebalance; a changed assignment starts a new stall window."""
        if assigned_partitions != self._assigned:
            self._waiting_since = self._clock()
        self._joined = joined
        self._assigned = assigned_partitions

    def progress(self) -> None:
        """A command finished."""
        self._waiting_since = self._clock()

    def backlog(self, records: int) -> None:
        """Records of the assigned partitions not yet finished (fetched or not)."""
        if records > 0 and self._backlog == 0:
            self._waiting_since = self._clock()  # work just arrived: nothing was overdue before
        self._backlog = records

    def outputs_failing(self, reason: str | None) -> None:
        """Output records cannot be delivered right now (None: they can again). The reason is
        the caller's to log: the probe says only that outputs fail."""
        self._outputs_failing = reason is not None

    @property
    def outputs_failed(self) -> bool:
        """Whether the latest word on output delivery was a failure."""
        return self._outputs_failing

    def task_failed(self, name: str, reason: str | None) -> None:
        """A background task died (None: it runs again). The reason is the caller's to log."""
        if reason is None:
            self._failed_tasks.discard(name)
        else:
            self._failed_tasks.add(name)

    def stopping(self) -> None:
        """Shutdown began: take no new webhooks, let the pod be removed from endpoints."""
        self._stopping = True

    def loop_lag(self, seconds: float) -> None:
        """The latest event-loop scheduling delay measured by the loop monitor."""
        self._loop_lag = seconds
        self._loop_measured_at = self._clock()

    # ---------------------------------------------------------------- probes
    def liveness(self) -> HealthReport:
        """Alive unless the loop is blocked, its monitor is silent, or consumption is stuck."""
        now = self._clock()
        silent = now - self._loop_measured_at
        waiting = now - self._waiting_since
        details = {
            "loop_lag_seconds": round(self._loop_lag, 3),
            "seconds_since_loop_measurement": round(silent, 3),
            "assigned_partitions": self._assigned,
            "backlog_records": self._backlog,
            "seconds_without_progress": round(waiting, 3) if self._backlog else 0.0,
        }
        limit = self._loop_block
        if self._loop_lag > limit:
            reason = f"event loop blocked: lagged {self._loop_lag:.2f} s (limit {limit:g} s)"
            return HealthReport(ok=False, reason=reason, details=details)
        if silent > limit:
            reason = f"event loop blocked: no measurement for {silent:.2f} s (limit {limit:g} s)"
            return HealthReport(ok=False, reason=reason, details=details)
        if self._assigned and self._backlog > 0 and waiting > self._stall_timeout:
            reason = (
                f"consumer stalled: {self._backlog} records waiting and none finished for "
                f"{waiting:.0f} s (limit {self._stall_timeout:g} s)"
            )
            return HealthReport(ok=False, reason=reason, details=details)
        return HealthReport(ok=True, reason="ok", details=details)

    def readiness(self) -> HealthReport:
        """Ready when connected, joined, delivering, all tasks running and not stopping."""
        details: dict[str, Any] = {
            "producer_connected": self._producer_ok,
            "group_joined": self._joined,
            "assigned_partitions": self._assigned,
            "outputs_failing": self._outputs_failing,
            "failed_tasks": sorted(self._failed_tasks),
        }
        problem = self._not_ready()
        if problem is not None:
            return HealthReport(ok=False, reason=problem, details=details)
        if not self._assigned:
            reason = "ok: group joined, no partitions assigned (idle member)"
            return HealthReport(ok=True, reason=reason, details=details)
        return HealthReport(ok=True, reason="ok", details=details)

    def _not_ready(self) -> str | None:
        """The first reason the worker is not ready, if any."""
        if self._stopping:
            return "shutting down"
        if self._outputs_failing:
            return "outputs not delivered to Kafka (output_delivery_failed in the logs)"
        if self._failed_tasks:
            name = min(self._failed_tasks)
            return f"background task {name} failed (background_task_failed in the logs)"
        if not self._producer_ok:
            return "producer not connected"
        if not self._joined:
            return "consumer group not joined"
        return None
