"""Consumer-group timing, in one place.

How the numbers relate (Kafka's classic group protocol, which aiokafka speaks):

- `session_timeout`: a member that sends no heartbeat for this long is expelled. aiokafka
  heartbeats while the revoke callback runs, but not while the assignment callback runs, so
  the assignment callback does nothing slow (`worker.pipeline.consumer` opens new partitions
  in the background).
- `heartbeat_interval`: at most a third of the session timeout, as Kafka recommends.
- `rebalance_timeout`: how long the coordinator waits for every member to rejoin once a
  rebalance starts. A member still finishing revoked work after that is expelled, and the new
  owner runs the same keys at once. aiokafka defaults it to the session timeout, which is far
  too short for draining, so it is always set; every phase of a revoke fits inside it
  (`worker.deadlines`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from worker import deadlines

if TYPE_CHECKING:
    from worker.settings import Settings

MAX_POLL_INTERVAL_MS = 300_000  # the loop polls every 100 ms, paused or not


class GroupTiming(NamedTuple):
    """The consumer's group timeouts in milliseconds, and the release deadlines."""

    session_timeout_ms: int
    heartbeat_interval_ms: int
    rebalance_timeout_ms: int
    max_poll_interval_ms: int
    deadlines: deadlines.Deadlines

    @classmethod
    def from_settings(cls, settings: Settings) -> GroupTiming:
        """Derive every value from the `CONVOAI_KAFKA_*` timing settings and the drain grace."""
        rebalance = settings.kafka_rebalance_timeout_seconds
        return cls(
            session_timeout_ms=int(settings.kafka_session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(settings.kafka_heartbeat_interval_seconds * 1000),
            rebalance_timeout_ms=int(rebalance * 1000),
            max_poll_interval_ms=max(MAX_POLL_INTERVAL_MS, int(rebalance * 1000)),
            deadlines=deadlines.derive(
                rebalance,
                settings.kafka_heartbeat_interval_seconds,
                settings.drain_grace_seconds,
            ),
        )
