"""How long to wait before the next attempt.

Exponential backoff with full jitter (the delay before retry n is uniform in
`[0, min(max, base * 2**(n-1))]`, which spreads a burst of failing clients best), a long backoff
for quota refusals (at least half of `quota * 2**(n-1)`, so a worker does not hammer a
concurrency limit that frees up in seconds, not milliseconds), and the API's own `Retry-After`
when it sends one of at most `RETRY_AFTER_CAP_SECONDS` (the official SDK's rule: a longer one,
a gateway's "come back in an hour", falls back to the backoff, so one header cannot park a
command for its whole budget). Whether the wait still fits before the command's deadline is
the caller's decision.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from worker.settings import Settings

RETRY_AFTER_CAP_SECONDS = 30.0


class Backoff:
    """Delays between attempts (`api_backoff_*` and `api_quota_backoff_seconds` settings)."""

    def __init__(
        self,
        *,
        base: float,
        cap: float,
        quota: float,
        uniform: Callable[[], float] = random.random,
    ) -> None:
        self._base = base
        self._cap = cap
        self._quota = quota
        self._quota_cap = max(cap, quota)
        self._uniform = uniform

    @classmethod
    def from_settings(cls, settings: Settings) -> Backoff:
        """The backoff the settings configure."""
        return cls(
            base=settings.api_backoff_base_seconds,
            cap=settings.api_backoff_max_seconds,
            quota=settings.api_quota_backoff_seconds,
        )

    def delay(self, retry: int, *, long: bool = False, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (1 for the first retry)."""
        if retry_after is not None and retry_after <= RETRY_AFTER_CAP_SECONDS:
            return retry_after
        if long:
            ceiling = min(self._quota_cap, self._quota * _growth(retry))
            return ceiling / 2 + self._uniform() * ceiling / 2
        return self._uniform() * min(self._cap, self._base * _growth(retry))


def _growth(retry: int) -> float:
    """2**(retry-1), bounded so a large attempt count cannot overflow a float."""
    return 2.0 ** min(retry - 1, 60)
