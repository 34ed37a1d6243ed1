"""Backoff delays: full jitter, the long quota backoff and `Retry-After`."""

from __future__ import annotations

from worker.api.retry import Backoff
from worker.settings import Settings


def backoff(uniform: float) -> Backoff:
    return Backoff(base=0.2, cap=10.0, quota=5.0, uniform=lambda: uniform)


def test_full_jitter_spans_zero_to_the_exponential_ceiling() -> None:
    """Retry n waits uniformly in [0, base * 2**(n-1)], capped at the maximum."""
    assert [backoff(1.0).delay(n) for n in (1, 2, 3, 4)] == [0.2, 0.4, 0.8, 1.6]
    assert backoff(0.0).delay(3) == 0.0
    assert backoff(0.5).delay(2) == 0.2
    assert backoff(1.0).delay(20) == 10.0


def test_quota_backoff_is_long_and_never_short() -> None:
    """A quota refusal waits between half and all of quota * 2**(n-1), capped."""
    assert backoff(0.0).delay(1, long=True) == 2.5
    assert backoff(1.0).delay(1, long=True) == 5.0
    assert backoff(1.0).delay(2, long=True) == 10.0
    assert backoff(1.0).delay(9, long=True) == 10.0


def test_retry_after_wins_up_to_thirty_seconds() -> None:
    """The API's own `Retry-After` is used as it is, for both kinds of backoff, up to 30 s."""
    assert backoff(1.0).delay(1, retry_after=3.0) == 3.0
    assert backoff(1.0).delay(4, long=True, retry_after=0.0) == 0.0
    assert backoff(1.0).delay(1, retry_after=30.0) == 30.0


def test_a_retry_after_over_thirty_seconds_falls_back_to_the_backoff() -> None:
    """As in the SDK: a longer header is ignored rather than parking the command."""
    assert backoff(1.0).delay(2, retry_after=30.5) == 0.4
    assert backoff(1.0).delay(1, long=True, retry_after=3600.0) == 5.0


def test_huge_attempt_numbers_do_not_overflow() -> None:
    """The exponential is bounded before it can overflow a float."""
    assert backoff(1.0).delay(10_000) == 10.0


def test_from_settings_reads_the_three_settings() -> None:
    """Base, cap and quota come from the `api_*backoff*` settings."""
    settings = Settings(
        api_backoff_base_seconds=1.0, api_backoff_max_seconds=3.0, api_quota_backoff_seconds=7.0
    )
    configured = Backoff.from_settings(settings)
    assert 0.0 <= configured.delay(5) <= 3.0
    assert 3.5 <= configured.delay(1, long=True) <= 7.0
