"""Which dead letters `dlq replay` takes, and the ids `--new-ids` gives."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest

from worker.commands.arguments import moment
from worker.commands.dead_letters import DeadLetter
from worker.commands.replay import Window, new_id

NOON = datetime(2026, 3, 1, 12, tzinfo=UTC)


def letter(at: datetime, value: bytes = b'{"command":"agent.stop","id":"x"}') -> DeadLetter:
    return DeadLetter(
        offset=4,
        partition=1,
        timestamp_ms=int(at.timestamp() * 1000),
        key=None,
        value=value,
        original_headers=[],
        source="",
        reason="",
        error="",
        truncated=False,
        null_value=False,
    )


def test_new_ids_stay_within_the_contracts_limit() -> None:
    assert new_id("c-1", "dlq:1:4") == "c-1~replay-1-4"
    long = new_id("x" * 128, "dlq:11:123456")
    assert len(long) == 128
    assert long.endswith("~replay-11-123456")


def test_the_window_bounds_time_and_command() -> None:
    window = Window(since=NOON, until=NOON + timedelta(hours=1), command="agent.stop")
    assert window.admits(letter(NOON))
    assert window.admits(letter(NOON + timedelta(hours=1)))
    assert not window.admits(letter(NOON - timedelta(seconds=1)))
    assert not window.admits(letter(NOON + timedelta(hours=1, seconds=1)))
    assert not window.admits(letter(NOON, b'{"command":"agent.start","id":"x"}'))
    assert not window.admits(letter(NOON, b"\xff"))


def test_times_are_rfc3339_or_ago() -> None:
    assert moment("2026-03-01T12:00:00Z") == NOON
    assert moment("2026-03-01T13:00:00+01:00") == NOON
    assert moment("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)
    assert abs(moment("2h") - (datetime.now(UTC) - timedelta(hours=2))) < timedelta(seconds=5)
    with pytest.raises(argparse.ArgumentTypeError, match="expected an RFC 3339 time"):
        moment("yesterday")
