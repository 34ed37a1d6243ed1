"""Fixtures: an emulator on the real clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.emulator.harness import RunningEmulator, running_emulator


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    """An emulator that requires the test credentials."""
    async with running_emulator() as running:
        yield running
