"""Liveness and readiness verdicts, driven by a fake clock."""

from __future__ import annotations

import pytest

from tests.observability.fakes import FakeClock
from worker.observability.health import Health
from worker.settings import Settings

STALL = 60.0
LOOP_BLOCK = 5.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def health(clock: FakeClock) -> Health:
    settings = Settings(stall_timeout_seconds=STALL, loop_block_seconds=LOOP_BLOCK)
    return Health(settings, clock=clock)


def elapse(health: Health, clock: FakeClock, seconds: float) -> None:
    """Let time pass with a healthy loop monitor reporting every second."""
    while seconds > 0:
        step = min(1.0, seconds)
        clock.advance(step)
        health.loop_lag(0.001)
        seconds -= step


class TestLoop:
    def test_alive_at_start_while_the_monitor_has_not_reported_yet(self, health: Health):
        """A new worker gets one threshold of grace before its monitor must report."""
        report = health.liveness()
        assert report.ok
        assert report.reason == "ok"

    def test_lag_above_the_limit_is_a_blocked_loop(self, health: Health):
        """A measured scheduling delay beyond `loop_block_seconds` fails liveness."""
        health.loop_lag(LOOP_BLOCK + 0.5)
        report = health.liveness()
        assert not report.ok
        assert report.reason == "event loop blocked: lagged 5.50 s (limit 5 s)"
        assert report.details["loop_lag_seconds"] == 5.5

    def test_lag_at_the_limit_is_tolerated(self, health: Health):
        """The limit itself is still alive; only exceeding it fails."""
        health.loop_lag(LOOP_BLOCK)
        assert health.liveness().ok

    def test_a_silent_monitor_counts_as_a_blocked_loop(self, health: Health, clock: FakeClock):
        """No measurement for longer than the limit fails liveness, even with a low last lag."""
        health.loop_lag(0.001)
        clock.advance(LOOP_BLOCK + 1)
        report = health.liveness()
        assert not report.ok
        assert report.reason == "event loop blocked: no measurement for 6.00 s (limit 5 s)"

    def test_a_fresh_measurement_makes_it_alive_again(self, health: Health, clock: FakeClock):
        """Liveness follows the latest measurement: a recovered loop is alive."""
        health.loop_lag(LOOP_BLOCK * 2)
        assert not health.liveness().ok
        clock.advance(0.5)
        health.loop_lag(0.002)
        assert health.liveness().ok


class TestStall:
    def test_lag_without_progress_beyond_the_timeout_is_a_stall(
        self, health: Health, clock: FakeClock
    ):
        """Assigned partitions with lag and no progress for `stall_timeout_seconds` fail."""
        health.group_state(joined=True, assigned_partitions=3)
        health.backlog(42)
        elapse(health, clock, STALL)
        assert health.liveness().ok
        elapse(health, clock, 1)
        report = health.liveness()
        assert not report.ok
        assert report.reason == (
            "consumer stalled: 42 records waiting and none finished for 61 s (limit 60 s)"
        )
        assert report.details["backlog_records"] == 42
        assert report.details["seconds_without_progress"] == 61.0

    def test_progress_restarts_the_window(self, health: Health, clock: FakeClock):
        """A finished command keeps a consumer with a backlog alive."""
        health.group_state(joined=True, assigned_partitions=1)
        health.backlog(10)
        elapse(health, clock, STALL - 1)
        health.progress()
        elapse(health, clock, STALL - 1)
        assert health.liveness().ok
        elapse(health, clock, 2)
        assert not health.liveness().ok
        health.progress()
        assert health.liveness().ok

    def test_no_lag_is_never_a_stall(self, health: Health, clock: FakeClock):
        """An idle consumer with nothing to do makes no progress and is fine."""
        health.group_state(joined=True, assigned_partitions=4)
        health.backlog(0)
        elapse(health, clock, STALL * 3)
        report = health.liveness()
        assert report.ok
        assert report.details["seconds_without_progress"] == 0.0

    def test_the_window_starts_when_lag_appears(self, health: Health, clock: FakeClock):
        """After a long idle time, new lag gets the full timeout before it counts as a stall."""
        health.group_state(joined=True, assigned_partitions=2)
        health.backlog(0)
        elapse(health, clock, STALL * 3)
        health.backlog(5)
        elapse(health, clock, STALL - 1)
        assert health.liveness().ok
        health.backlog(7)  # more lag, still no progress: the window keeps running
        elapse(health, clock, 2)
        assert not health.liveness().ok

    def test_lag_without_assigned_partitions_is_not_a_stall(self, health: Health, clock: FakeClock):
        """Lag reported for partitions since revoked does not fail this member."""
        health.group_state(joined=True, assigned_partitions=0)
        health.backlog(100)
        elapse(health, clock, STALL * 2)
        assert health.liveness().ok

    def test_a_new_assignment_starts_a_new_window(self, health: Health, clock: FakeClock):
        """Partitions taken over in a rebalance get a full timeout for their inherited lag."""
        health.group_state(joined=True, assigned_partitions=2)
        health.backlog(9)
        elapse(health, clock, STALL - 1)
        health.group_state(joined=True, assigned_partitions=3)
        elapse(health, clock, STALL - 1)
        assert health.liveness().ok
        elapse(health, clock, 2)
        assert not health.liveness().ok

    def test_an_unchanged_assignment_keeps_the_window(self, health: Health, clock: FakeClock):
        """Reporting the same assignment again does not hide a stall."""
        health.group_state(joined=True, assigned_partitions=2)
        health.backlog(9)
        elapse(health, clock, STALL - 1)
        health.group_state(joined=True, assigned_partitions=2)
        elapse(health, clock, 2)
        assert not health.liveness().ok


class TestReadiness:
    def test_not_ready_until_the_producer_is_connected(self, health: Health):
        """A joined consumer without a producer cannot publish results: not ready."""
        health.group_state(joined=True, assigned_partitions=3)
        report = health.readiness()
        assert not report.ok
        assert report.reason == "producer not connected"
        assert report.details == {
            "producer_connected": False,
            "group_joined": True,
            "assigned_partitions": 3,
            "outputs_failing": False,
            "failed_tasks": [],
        }

    def test_not_ready_until_the_group_is_joined(self, health: Health):
        """A connected producer alone is not enough: the consumer must be in its group."""
        health.producer_ready(True)
        report = health.readiness()
        assert not report.ok
        assert report.reason == "consumer group not joined"

    def test_ready_with_assigned_partitions(self, health: Health):
        """Producer up and partitions assigned: ready."""
        health.producer_ready(True)
        health.group_state(joined=True, assigned_partitions=3)
        report = health.readiness()
        assert report.ok
        assert report.reason == "ok"

    def test_ready_as_an_idle_member(self, health: Health):
        """A member with no partitions (more replicas than partitions) is ready, and says so."""
        health.producer_ready(True)
        health.group_state(joined=True, assigned_partitions=0)
        report = health.readiness()
        assert report.ok
        assert report.reason == "ok: group joined, no partitions assigned (idle member)"

    def test_not_ready_after_the_producer_closed_or_the_group_was_left(self, health: Health):
        """Readiness follows the latest state in both directions."""
        health.producer_ready(True)
        health.group_state(joined=True, assigned_partitions=1)
        health.group_state(joined=False, assigned_partitions=0)
        assert health.readiness().reason == "consumer group not joined"
        health.group_state(joined=True, assigned_partitions=1)
        health.producer_ready(False)
        assert health.readiness().reason == "producer not connected"

    def test_not_ready_while_outputs_cannot_be_delivered(self, health: Health):
        """Failing deliveries make the worker not ready until one succeeds again."""
        health.producer_ready(True)
        health.group_state(joined=True, assigned_partitions=1)
        health.outputs_failing("convoai.results: KafkaTimeoutError()")
        report = health.readiness()
        assert not report.ok
        assert report.reason == (
            "outputs not delivered to Kafka (output_delivery_failed in the logs)"
        )
        assert report.details["outputs_failing"] is True
        health.outputs_failing(None)
        assert health.readiness().ok

    def test_not_ready_while_a_background_task_is_down(self, health: Health):
        """A dead background task is named in the reason until it runs again (why it died is
        in the logs only)."""
        health.producer_ready(True)
        health.group_state(joined=True, assigned_partitions=1)
        health.task_failed("state-follower", "KafkaError: boom")
        report = health.readiness()
        assert report.reason == (
            "background task state-follower failed (background_task_failed in the logs)"
        )
        assert report.details["failed_tasks"] == ["state-follower"]
        health.task_failed("state-follower", None)
        assert health.readiness().ok

    def test_not_ready_once_shutting_down(self, health: Health):
        """From the first signal on, the pod leaves the service endpoints."""
        health.producer_ready(True)
        health.group_state(joined=True, assigned_partitions=1)
        health.stopping()
        assert health.readiness().reason == "shutting down"
