"""An event loop on virtual time: a 30 s grace costs microseconds, and the run is repeatable.

The loop's clock only moves when nothing is ready to run: it then jumps to the next timer
instead of waiting for it. Everything the simulated group does is in this process (the
in-memory broker, the API in `simulation.api`), so no real I/O has to be waited for; the
loop still polls its real selector without blocking, for the ops servers' sockets and the
loop's own wake-up pipe.

A loop with nothing ready and no timer left would wait forever for I/O that cannot come:
every task is waiting for something nobody will do. That is a hang of the code under test,
and it raises `StalledError` instead of blocking the simulator. (`looptime` fakes time the same way
for tests; this one is a few lines, and tells a hang from an idle loop.)
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any

REAL_GRACE_POLLS = 20  # before calling a loop stalled, wait this many times ...
REAL_GRACE_SECONDS = 0.01  # ... this long for real I/O (a thread's result, a socket)


class StalledError(RuntimeError):
    """Every task waits, and no timer will wake any of them."""


class _VirtualSelector:
    """The loop's selector, but waiting means moving the clock to the next timer."""

    def __init__(self, real: selectors.BaseSelector, clock: VirtualClock) -> None:
        self._real = real
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        events = self._real.select(0)
        if events:
            return events
        if timeout is None:
            for _ in range(REAL_GRACE_POLLS):
                events = self._real.select(REAL_GRACE_SECONDS)
                if events:
                    return events
            raise StalledError(f"nothing to run and no timer at t={self._clock.now:.3f} s")
        self._clock.now += timeout
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class VirtualClock:
    """Seconds since the simulation started."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        """The loop's `time()`."""
        return self.now


def virtual_loop() -> tuple[asyncio.AbstractEventLoop, VirtualClock]:
    """A new selector event loop whose time is a `VirtualClock`."""
    loop = asyncio.SelectorEventLoop()
    clock = VirtualClock()
    loop.time = clock.time  # type: ignore[method-assign]
    loop._selector = _VirtualSelector(loop._selector, clock)  # type: ignore[attr-defined]
    return loop, clock
