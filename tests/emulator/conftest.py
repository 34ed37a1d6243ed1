"""Fixtures: an emulator on a fake clock, served on an ephemeral loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.emulator.harness import FakeClock, RunningEmulator, running_emulator


@pytest.fixture
def clock() -> FakeClock:
    """The wall clock the emulator reads."""
    return FakeClock()


@pytest.fixture
async def emulator(clock: FakeClock) -> AsyncIterator[RunningEmulator]:
    """An emulator that requires the test credentials and reads `clock`."""
    async with running_emulator(clock=clock) as running:
        yield running
