"""The parent's hold on its worker processes: restarts with backoff, crash loops, signals.

A process that exits while the pod is not stopping is started again after a backoff that grows
with its restarts in the last `RestartPolicy.window` seconds (1, 2, 4, ... s, at most 30 s), and
logged (`process_exited`). One that needs more than `max_restarts` restarts within the window is
in a crash loop: the parent stops the others as at SIGTERM and exits non-zero, so Kubernetes
restarts the pod and shows the loop, instead of a pod that serves with a process missing.

`stop()` (the first SIGTERM/SIGINT) passes SIGTERM on to every process, which drains as a single
worker does, and starts no process again; whatever still runs after `shutdown_bound` seconds is
killed (`shutdown_overran`). `force()` (the second signal) passes it on once more: the processes
then kill their work in flight and exit at once, as a single worker does, within
`forced_bound`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Literal, NamedTuple, Protocol

import structlog

from worker.commands.exit_codes import INVALID, NOT_SUCCEEDED, OK, UNREACHABLE
from worker.metrics import Metrics

log = structlog.get_logger(__name__)


class Child(Protocol):
    """A started worker process (`asyncio.subprocess.Process` is one)."""

    @property
    def pid(self) -> int:
        """Its process id."""
        ...

    async def wait(self) -> int:
        """Its exit code once it has exited (negative: the signal that ended it)."""
        ...

    def send_signal(self, signal: int) -> None:
        """Send it a signal."""
        ...

    def kill(self) -> None:
        """SIGKILL it."""
        ...


Spawn = Callable[[int], Awaitable[Child]]
"""Starts the worker process of an index (0 to N - 1)."""


class RestartPolicy(NamedTuple):
    """When a process that exited is started again, and when the pod gives up."""

    backoff_base: float = 1.0
    backoff_max: float = 30.0
    max_restarts: int = 5  # within the window; one more is a crash loop
    window: float = 300.0

    def delay(self, recent: int) -> float:
        """The backoff before the `recent`-th restart within the window."""
        return min(self.backoff_max, self.backoff_base * 2.0 ** (recent - 1))


RESTARTS = RestartPolicy()


State = Literal["starting", "running", "restarting", "stopped"]


class Slot:
    """What the parent knows of one index's process (the probes read it)."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.child: Child | None = None
        self.state: State = "starting"
        self.exit_code: int | None = None  # of the latest process that exited
        self.drained: int | None = None  # the exit code of the process that ran at the stop
        self.restarts: deque[float] = deque()  # when, within the policy's window
        self.restart_in: float = 0.0  # the backoff of the pending restart

    @property
    def pid(self) -> int | None:
        """The running process's id."""
        return self.child.pid if self.child is not None else None


class Supervisor:
    """Runs N worker processes until `stop()`, or until one of them is in a crash loop."""

    def __init__(
        self,
        count: int,
        spawn: Spawn,
        metrics: Metrics,
        *,
        shutdown_bound: float,
        forced_bound: float,
        policy: RestartPolicy = RESTARTS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.slots = [Slot(index) for index in range(count)]
        self._spawn = spawn
        self._metrics = metrics
        self._shutdown_bound = shutdown_bound
        self._forced_bound = forced_bound
        self._policy = policy
        self._clock = clock
        self._sleep = sleep
        self._stopping = asyncio.Event()
        self._crashed: int | None = None  # the exit code of the process in a crash loop
        self._deadline: asyncio.TimerHandle | None = None

    @property
    def stopping(self) -> bool:
        """Whether the processes were asked to stop."""
        return self._stopping.is_set()

    async def run(self) -> int:
        """Start every process, keep them running until stopped; the pod's exit code."""
        try:
            await asyncio.gather(*(self._keep(slot) for slot in self.slots))
        finally:
            if self._deadline is not None:
                self._deadline.cancel()
        if self._crashed is not None:
            code = self._crashed
            return code if code in (INVALID, UNREACHABLE) else NOT_SUCCEEDED
        drained = all(slot.drained in (None, OK) for slot in self.slots)
        return OK if drained else NOT_SUCCEEDED

    def stop(self) -> None:
        """Pass SIGTERM on to every process, start none again, kill them after the bound."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._signal_all(signal.SIGTERM)
        self._arm(self._shutdown_bound, "graceful")

    def force(self) -> None:
        """Pass the second signal on: the processes exit at once (killed after a bound)."""
        self.stop()
        self._signal_all(signal.SIGTERM)
        self._arm(self._forced_bound, "forced")

    async def _keep(self, slot: Slot) -> None:
        """Run the slot's process again and again until the pod stops or it crash-loops."""
        while not self._stopping.is_set():
            slot.state = "running"
            code = await self._run_once(slot)
            slot.exit_code = code
            if self._stopping.is_set():
                slot.drained = code
                break
            delay = self._restart_delay(slot, code)
            if delay is None:
                break
            slot.state, slot.restart_in = "restarting", delay
            self._metrics.worker_restarts(str(slot.index)).inc()
            await self._pause(delay)
        slot.state = "stopped"

    async def _run_once(self, slot: Slot) -> int:
        """Start the slot's process and wait for its exit code."""
        try:
            child = await self._spawn(slot.index)
        except OSError as error:
            log.exception("process_not_started", process=slot.index, error=str(error))
            return NOT_SUCCEEDED
        slot.child = child
        log.info("process_started", process=slot.index, pid=child.pid)
        if self._stopping.is_set():  # stopped while it was being started
            _send(child, signal.SIGTERM)
        try:
            return await child.wait()
        finally:
            slot.child = None

    def _restart_delay(self, slot: Slot, code: int) -> float | None:
        """The backoff before the process is started again; None: a crash loop, the pod
        stops."""
        now = self._clock()
        slot.restarts.append(now)
        while slot.restarts and slot.restarts[0] <= now - self._policy.window:
            slot.restarts.popleft()
        recent = len(slot.restarts)
        if recent > self._policy.max_restarts:
            log.error(
                "process_crash_loop",
                process=slot.index,
                exit_code=code,
                restarts=recent - 1,
                window_seconds=self._policy.window,
            )
            self._crashed = code
            self.stop()
            return None
        delay = self._policy.delay(recent)
        log.error("process_exited", process=slot.index, exit_code=code, restart_in_seconds=delay)
        return delay

    async def _pause(self, seconds: float) -> None:
        """Wait `seconds`, or less if the pod stops meanwhile."""
        sleeping = asyncio.ensure_future(self._sleep(seconds))
        stopped = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({sleeping, stopped}, return_when=asyncio.FIRST_COMPLETED)
        for task in (sleeping, stopped):
            task.cancel()

    def _signal_all(self, signum: int) -> None:
        for slot in self.slots:
            if slot.child is not None:
                _send(slot.child, signum)

    def _arm(self, seconds: float, shutdown: str) -> None:
        """Kill whatever still runs `seconds` from now (re-arming replaces)."""
        if self._deadline is not None:
            self._deadline.cancel()
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(seconds, self._overran, seconds, shutdown)

    def _overran(self, seconds: float, shutdown: str) -> None:
        running = [slot for slot in self.slots if slot.child is not None]
        if not running:
            return
        log.error(
            "shutdown_overran",
            shutdown=shutdown,
            bound_seconds=round(seconds, 1),
            processes=[slot.index for slot in running],
        )
        for slot in running:
            if slot.child is not None:
                with contextlib.suppress(ProcessLookupError):
                    slot.child.kill()


def _send(child: Child, signum: int) -> None:
    """Signal a process that may have exited just now."""
    with contextlib.suppress(ProcessLookupError):
        child.send_signal(signum)
