"""Fixtures: an emulator and an executor wired to it with zero-length backoff sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from contracts import decode_command
from tests.emulator.harness import FakeClock, RunningEmulator, running_emulator
from worker.agents.directory import AgentDirectory
from worker.api.client import ConvoAIClient
from worker.api.retry import Backoff
from worker.execution import Execution, Executor
from worker.settings import Settings


class Sleeps:
    """Records backoff waits instead of waiting; moves `clock` on by each wait when given."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.delays: list[float] = []
        self._clock = clock

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self._clock is not None:
            self._clock.advance(seconds)
        await asyncio.sleep(0)


class RecordingObserver:
    """Keeps every observation."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.retries: list[tuple[str, str]] = []
        self.unreadable: list[str] = []

    def request_finished(self, operation: str, status_class: str, seconds: float) -> None:
        assert seconds >= 0
        self.requests.append((operation, status_class))

    def retry_scheduled(self, operation: str, reason: str, delay: float) -> None:
        assert delay >= 0
        self.retries.append((operation, reason))

    def unreadable_response(self, operation: str) -> None:
        self.unreadable.append(operation)


class Env:
    """An executor against the emulator, with its name directory, sleeps and observations.

    With a `clock`, the emulator and the executor share it and backoff waits move it on, so a
    command that polls sees the emulator's time pass (an agent finish stopping, say).
    """

    def __init__(
        self,
        emulator: RunningEmulator,
        stack: contextlib.AsyncExitStack,
        clock: FakeClock | None = None,
    ) -> None:
        self.emulator = emulator
        self.clock = clock
        self.names = AgentDirectory()
        self.sleeps = Sleeps(clock)
        self.observer = RecordingObserver()
        self._stack = stack
        self._executor: Executor | None = None

    async def configure(
        self, *, jitter: Callable[[], float] | None = None, **overrides: Any
    ) -> Executor:
        """(Re)build the executor with settings overrides (attempts, timeouts, ...); `jitter`
        replaces the backoff's random fraction (1.0: every delay is its ceiling)."""
        settings: Settings = self.emulator.settings(**overrides)
        client = await self._stack.enter_async_context(ConvoAIClient(settings))
        backoff = Backoff.from_settings(settings)
        if jitter is not None:
            backoff = Backoff(
                base=settings.api_backoff_base_seconds,
                cap=settings.api_backoff_max_seconds,
                quota=settings.api_quota_backoff_seconds,
                uniform=jitter,
            )
        self._executor = Executor(
            client,
            settings,
            self.names,
            observer=self.observer,
            sleep=self.sleeps,
            clock=self.clock or time.time,
            backoff=backoff,
        )
        return self._executor

    async def run(
        self, command: dict[str, Any], *, received_at: datetime | None = None
    ) -> Execution:
        """Decode and execute one command given as a JSON object."""
        executor = self._executor or await self.configure()
        decoded = decode_command(msgspec.json.encode(command))
        return await executor.execute(decoded, received_at=received_at or datetime.now(UTC))


def issued_later() -> datetime:
    """A record time in a later second than any agent started so far: a command issued after
    they were, so none of them can be from an earlier run of it."""
    return datetime.now(UTC) + timedelta(seconds=1)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    """An emulator requiring the test credentials and an executor aimed at it."""
    async with contextlib.AsyncExitStack() as stack:
        emulator = await stack.enter_async_context(running_emulator())
        yield Env(emulator, stack)


@pytest.fixture
async def clocked_env() -> AsyncIterator[Env]:
    """Like `env`, on a fake clock that the executor's backoff waits move on."""
    clock = FakeClock()
    async with contextlib.AsyncExitStack() as stack:
        emulator = await stack.enter_async_context(running_emulator(clock=clock))
        yield Env(emulator, stack, clock)


@pytest.fixture
def emulator(env: Env) -> RunningEmulator:
    """The emulator `env` is aimed at."""
    return env.emulator


def number_add() -> dict[str, Any]:
    """A number.add command importing +19876543210."""
    return {
        "command": "number.add",
        "id": "add",
        "provider": "byo",
        "phone_number": "+19876543210",
        "label": "Sales",
        "inbound_config": {"allowed_addresses": ["10.0.0.0/8"]},
        "outbound_config": {"address": "sip.example.com"},
    }
