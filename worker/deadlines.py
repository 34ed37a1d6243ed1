"""Every deadline of a release and of shutdown, derived from three settings so that they add up.

Releasing partitions (a revoke, or the drain at shutdown) runs in phases, each with its own
deadline, one after the other:

    grace ─► interrupt wait ─► kill wait ─► commit
    running work      abandoned work     cancelled work    the finished
    may finish        publishes its      ends (it cannot   positions and
                      `unknown` result   park)             offset maps

A revoke must be over before the group coordinator gives up on this member: the rebalance
timeout, less one heartbeat interval of slack for the JoinGroup request that follows. So the
revoke grace is what is left of the rebalance timeout once the other phases are paid for, and
settings that leave less than `MIN_GRACE_SECONDS` are refused (`problem`). Shutdown has the
drain grace instead of the revoke grace, then closes the clients (each bounded), so the pod's
termination grace period is derived from the same sum (`shutdown_bound`; the Helm chart computes
the same figure).

A pod of several worker processes (`worker.processes`) has the same bound: the parent passes
the signal on at once, each process drains within its own bound, and the parent kills what still
runs `PARENT_MARGIN_SECONDS` after it (`processes_bound`), well inside the watchdog's margin, so
the parent too has exited when the termination grace ends.
"""

from __future__ import annotations

import math
from typing import NamedTuple

MIN_GRACE_SECONDS = 1.0
KILL_WAIT_SECONDS = 0.5  # cancelled work ends at its next await; this is generous
INTERRUPT_SHARE = 1 / 6  # of the rebalance timeout, at least MIN_PHASE_SECONDS
COMMIT_SHARE = 1 / 10
MIN_PHASE_SECONDS = 1.0
CLIENT_STOP_SECONDS = 5.0  # each Kafka client's stop (worker.kafka.connection.stop_within)
CLOSING_CLIENTS = 2  # the group member (leaves the group) and the producer (flushes)
SHUTDOWN_MARGIN_SECONDS = 5.0  # the rest of closing: API client, readers, ops server
WATCHDOG_MARGIN_SECONDS = 2.0  # past the shutdown bound, for the loop's own scheduling
FORCED_EXIT_SECONDS = 10.0  # a forced exit kills work (0.5 s) and closes each client (≤ 5 s)
# a parent of several processes: past their bound, then it closes its ops port (milliseconds)
PARENT_MARGIN_SECONDS = 0.5


class Deadlines(NamedTuple):
    """The phases' lengths in seconds."""

    rebalance_timeout: float
    heartbeat_interval: float
    revoke_grace: float
    drain_grace: float
    interrupt_wait: float
    kill_wait: float
    commit: float

    @property
    def release_bound(self) -> float:
        """The longest a revoke takes: inside the rebalance timeout less one heartbeat."""
        return self.revoke_grace + self.after_grace

    @property
    def after_grace(self) -> float:
        """Interrupt wait, kill wait and commit: what follows the grace of any release."""
        return self.interrupt_wait + self.kill_wait + self.commit

    @property
    def shutdown_bound(self) -> float:
        """The longest a graceful shutdown takes, from SIGTERM to exit."""
        closing = CLOSING_CLIENTS * CLIENT_STOP_SECONDS + SHUTDOWN_MARGIN_SECONDS
        return self.drain_grace + self.after_grace + closing

    @property
    def processes_bound(self) -> float:
        """How long the parent of several worker processes waits for them after a signal."""
        return self.shutdown_bound + PARENT_MARGIN_SECONDS

    @property
    def termination_grace(self) -> int:
        """The pod's `terminationGracePeriodSeconds`: the shutdown bound and the watchdog's
        margin (the Helm chart derives the same figure from the same settings)."""
        return math.ceil(self.shutdown_bound + WATCHDOG_MARGIN_SECONDS)


def _phases(rebalance_timeout: float) -> tuple[float, float]:
    interrupt = max(MIN_PHASE_SECONDS, rebalance_timeout * INTERRUPT_SHARE)
    commit = max(MIN_PHASE_SECONDS, rebalance_timeout * COMMIT_SHARE)
    return interrupt, commit


def derive(rebalance_timeout: float, heartbeat_interval: float, drain_grace: float) -> Deadlines:
    """The deadlines for these settings (`problem` says whether they are acceptable)."""
    interrupt, commit = _phases(rebalance_timeout)
    grace = rebalance_timeout - heartbeat_interval - interrupt - KILL_WAIT_SECONDS - commit
    return Deadlines(
        rebalance_timeout=rebalance_timeout,
        heartbeat_interval=heartbeat_interval,
        revoke_grace=grace,
        drain_grace=drain_grace,
        interrupt_wait=interrupt,
        kill_wait=KILL_WAIT_SECONDS,
        commit=commit,
    )


def problem(rebalance_timeout: float, heartbeat_interval: float) -> str | None:
    """Why these group timings leave no room for a revoke grace, or None when they do."""
    deadlines = derive(rebalance_timeout, heartbeat_interval, 0.0)
    if deadlines.revoke_grace >= MIN_GRACE_SECONDS:
        return None
    needed = rebalance_timeout
    while derive(needed, heartbeat_interval, 0.0).revoke_grace < MIN_GRACE_SECONDS:
        needed += 0.5  # the interrupt and commit phases grow with the timeout: step up to it
    return (
        f"CONVOAI_KAFKA_REBALANCE_TIMEOUT_SECONDS={rebalance_timeout:g} leaves "
        f"{max(0.0, deadlines.revoke_grace):.2f} s of revoke grace after one heartbeat "
        f"(CONVOAI_KAFKA_HEARTBEAT_INTERVAL_SECONDS={heartbeat_interval:g}), the interrupt wait "
        f"({deadlines.interrupt_wait:g} s), the kill wait ({deadlines.kill_wait:g} s) and the "
        f"commit ({deadlines.commit:g} s); it must be at least {needed:g} s, or the heartbeat "
        "interval shorter"
    )
