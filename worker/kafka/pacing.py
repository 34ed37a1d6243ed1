"""A pause after each failed metadata refresh of an aiokafka client.

With the broker unreachable, aiokafka's producer (a batch whose partition leader is unknown)
and fetcher ask for a metadata refresh, and ask again as soon as it fails, with no pause in
between: one process spun at 4,000+ refreshes a second, a core busy and megabytes of log a
minute, for as long as the outage lasted (`make chaos`, scenario 2). Every such loop waits for
the client's one refresh, so pausing after a failed refresh, before its waiters are told,
paces them all; a successful refresh is never delayed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

# aiokafka's default retry_backoff_ms is 100 ms; a refresh that fails waits at least this long.
FAILED_REFRESH_PAUSE_SECONDS = 0.5


def pace_failed_metadata_refreshes(
    client: Any,
    pause: float = FAILED_REFRESH_PAUSE_SECONDS,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Wrap `client._metadata_update` (aiokafka's `AIOKafkaClient`, pinned <0.15, where every
    refresh goes through it) so that a failed refresh returns after `pause` seconds."""
    refresh: Callable[[Any, Any], Awaitable[bool]] = client._metadata_update

    async def paced(cluster: Any, topics: Any) -> bool:
        updated = await refresh(cluster, topics)
        if not updated:
            await sleep(pause)
        return updated

    client._metadata_update = paced
