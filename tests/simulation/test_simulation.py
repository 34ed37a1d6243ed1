"""The simulator: repeatable, it finds a broken promise when one is planted, and fixed seeds
hold on the worker as it is (`make simulate` runs many more)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from simulation.clock import StalledError, virtual_loop
from simulation.invariants import judge
from simulation.schedule import Fault, Schedule, draw
from simulation.world import settings_for, simulate
from worker.kafka.memory import StoredRecord
from worker.pipeline.consumer import CommandConsumer

SEEDS = range(12)


@pytest.mark.parametrize("seed", SEEDS)
def test_fixed_seeds_break_no_promise(seed: int) -> None:
    """A dozen schedules of overlapping faults: every invariant holds."""
    observations, _ = simulate(draw(seed), settings_for())
    violations, figures = judge(observations)
    assert violations == []
    assert figures.results >= figures.commands - 10  # the run did its work (poison aside)


def test_a_run_repeats_exactly() -> None:
    """The same seed twice: the same requests at the same virtual times, the same results in
    the same places (all but the times they take from the wall clock)."""
    first, _ = simulate(draw(7), settings_for())
    second, _ = simulate(draw(7), settings_for())
    assert first.api.calls == second.api.calls
    assert results(first.broker.records("sim.results")) == results(
        second.broker.records("sim.results")
    )


def results(records: list[StoredRecord]) -> list[tuple[int, int, dict[str, Any]]]:
    """Where each result landed and what it says, without its wall-clock times (completion, and
    receipt for a record with no timestamp)."""
    decoded = [(r.partition, r.offset, msgspec.json.decode(r.value or b"{}")) for r in records]
    for _, _, result in decoded:
        for wall_clock in ("completed_at", "received_at", "duration_ms"):
            result.pop(wall_clock, None)
    return decoded


@pytest.fixture
def release_returning_early(monkeypatch: pytest.MonkeyPatch) -> None:
    """The release as it was: a revoke that finds its partitions being drained returns at once
    instead of joining the drain."""

    async def early(self: CommandConsumer, partitions: set[int], grace: float, why: str) -> None:
        fresh = self._begin(partitions, grace, why)
        if fresh is not None and fresh.task is not None:
            await asyncio.shield(fresh.task)

    monkeypatch.setattr(CommandConsumer, "release", early)


@pytest.mark.usefixtures("release_returning_early")
def test_the_simulator_finds_a_rebalance_during_a_drain() -> None:
    """With the old release, a member that joins while another drains runs the drainer's
    in-flight speaks again: one SIGTERM is enough (the healing member joins meanwhile)."""
    schedule = Schedule(
        seed=5, members=1, keys=34, produce_seconds=22.46, faults=(Fault(6.61, "sigterm"),)
    )
    violations, _ = judge(simulate(schedule, settings_for())[0])
    assert "repeated_calls" in {v.kind for v in violations}


def test_a_hang_is_reported_not_waited_for() -> None:
    """Every task waiting for what nobody will do: the loop says so instead of blocking."""
    loop, clock = virtual_loop()
    try:
        with pytest.raises(StalledError):
            loop.run_until_complete(asyncio.Event().wait())
        loop.run_until_complete(asyncio.sleep(3600))
        assert clock.now >= 3600
    finally:
        loop.close()
