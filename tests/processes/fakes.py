"""Test doubles for the parent of several worker processes: processes, their starter, time."""

from __future__ import annotations

import asyncio
import signal
from collections import defaultdict
from collections.abc import Callable


class FakeProcess:
    """A worker process that exits when told to, and on SIGTERM as `on_sigterm` says."""

    def __init__(self, pid: int, on_sigterm: int | None = 0) -> None:
        self.pid = pid
        self.on_sigterm = on_sigterm  # exit code after a SIGTERM; None: it keeps running
        self.signals: list[int] = []
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    @property
    def running(self) -> bool:
        return not self._exited.done()

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def send_signal(self, signal: int) -> None:
        if not self.running:
            raise ProcessLookupError
        self.signals.append(signal)
        if self.on_sigterm is not None:
            self.exit(self.on_sigterm)

    def kill(self) -> None:
        self.signals.append(signal.SIGKILL)
        self.exit(-signal.SIGKILL)

    def exit(self, code: int) -> None:
        if self.running:
            self._exited.set_result(code)


class FakeStarter:
    """Starts `FakeProcess`es; `behave(index, process)` may make a new one exit at once."""

    def __init__(self, behave: Callable[[int, FakeProcess], None] | None = None) -> None:
        self.started: dict[int, list[FakeProcess]] = defaultdict(list)
        self._behave = behave
        self._next_pid = 100

    async def spawn(self, index: int) -> FakeProcess:
        self._next_pid += 1
        process = FakeProcess(self._next_pid)
        self.started[index].append(process)
        if self._behave is not None:
            self._behave(index, process)
        await asyncio.sleep(0)
        return process

    def latest(self, index: int) -> FakeProcess:
        return self.started[index][-1]

    def running(self) -> list[FakeProcess]:
        return [p for processes in self.started.values() for p in processes if p.running]


class FakeTime:
    """A clock that a backoff moves forward by its length (plus `extra`), at once."""

    def __init__(self, extra: float = 0.0) -> None:
        self.now = 1_000.0
        self.extra = extra
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds + self.extra
        await asyncio.sleep(0)


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Wait (bounded) until `condition()` holds, letting the supervisor run meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)
