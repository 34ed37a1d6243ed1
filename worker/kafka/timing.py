"""Consumer-group timing, in one place.

How the numbers relate (Kafka's classic group protocol, which aiokafka speaks):

- `session_timeout`: a member that sends no heartbeat for this long is expelled. Heartbeats
  continue while the member finishes its revoked partitions, so draining never expires it.
- `heartbeat_interval`: at most a third of the session timeout, as Kafka recommends.
- `rebalance_timeout`: how long the coordinator waits for every member to rejoin once a
  rebalance starts. A member still finishing revoked work after it is expelled, and the new
  owner runs the same keys at once. aiokafka defaults it to the session timeout, which is far
  too short for draining, so it is always set.
- `revoke_grace`: how long in-flight commands of revoked partitions may run on. It is two
  thirds of the rebalance timeout: the last third is for giving unfinished non-idempotent calls
  their `unknown` result, publishing and committing before rejoining.
"""

from __future__ import annotations

from typing import NamedTuple

from worker.settings import Settings

MAX_POLL_INTERVAL_MS = 300_000  # the loop polls every 100 ms, paused or not
REVOKE_SHARE = 2 / 3


class GroupTiming(NamedTuple):
    """The consumer's group timeouts in milliseconds, and the revoke grace in seconds."""

    session_timeout_ms: int
    heartbeat_interval_ms: int
    rebalance_timeout_ms: int
    max_poll_interval_ms: int
    revoke_grace_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> GroupTiming:
        """Derive every value from the three `CONVOAI_KAFKA_*` timing settings."""
        rebalance = settings.kafka_rebalance_timeout_seconds
        return cls(
            session_timeout_ms=int(settings.kafka_session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(settings.kafka_heartbeat_interval_seconds * 1000),
            rebalance_timeout_ms=int(rebalance * 1000),
            max_poll_interval_ms=max(MAX_POLL_INTERVAL_MS, int(rebalance * 1000)),
            revoke_grace_seconds=rebalance * REVOKE_SHARE,
        )
