"""The parent's hold on its worker processes: restarts, crash loops and signals, with fakes."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry

from tests.processes.fakes import FakeProcess, FakeStarter, FakeTime, until
from worker.commands.exit_codes import NOT_SUCCEEDED, OK, UNREACHABLE
from worker.metrics import Metrics
from worker.processes.supervisor import RestartPolicy, Spawn, Supervisor

POLICY = RestartPolicy(backoff_base=1.0, backoff_max=4.0, max_restarts=5, window=100.0)
LONG = 60.0  # a bound no test reaches unless it means to


def supervisor(
    starter: FakeStarter,
    time: FakeTime | None = None,
    *,
    count: int = 2,
    shutdown_bound: float = LONG,
    forced_bound: float = LONG,
    spawn: Spawn | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> tuple[Supervisor, Metrics]:
    time = time or FakeTime()
    metrics = Metrics(CollectorRegistry())
    return Supervisor(
        count,
        spawn or starter.spawn,
        metrics,
        shutdown_bound=shutdown_bound,
        forced_bound=forced_bound,
        policy=POLICY,
        clock=time.clock,
        sleep=sleep or time.sleep,
    ), metrics


def restarts(metrics: Metrics, index: int) -> float:
    value = metrics.registry.get_sample_value(
        "convoai_worker_process_restarts_total", {"process": str(index)}
    )
    return value or 0.0


def dying(times: int, code: int, index: int = 1):
    """Process `index` exits with `code` at once, its first `times` starts."""

    def behave(at: int, process: FakeProcess) -> None:
        nonlocal times
        if at == index and times > 0:
            times -= 1
            process.exit(code)

    return behave


async def test_a_process_that_dies_is_started_again_after_a_growing_backoff():
    """Each restart of a process within the window waits twice as long as the one before (at
    most the maximum), is counted per process, and leaves the other process alone."""
    starter, time = FakeStarter(dying(4, -signal.SIGKILL)), FakeTime()
    parent, metrics = supervisor(starter, time)
    running = asyncio.create_task(parent.run())
    await until(lambda: len(starter.started[1]) == 5 and starter.latest(1).running)
    assert time.sleeps == [1.0, 2.0, 4.0, 4.0]
    assert restarts(metrics, 1) == 4
    assert restarts(metrics, 0) == 0
    assert len(starter.started[0]) == 1
    parent.stop()
    assert await running == OK


async def test_restarts_spread_wider_than_the_window_are_no_crash_loop():
    """A process that dies now and then (more than the window apart) is restarted after the
    first backoff each time, however often that adds up to."""
    starter, time = FakeStarter(dying(8, NOT_SUCCEEDED)), FakeTime(extra=POLICY.window)
    parent, _ = supervisor(starter, time)
    running = asyncio.create_task(parent.run())
    await until(lambda: len(starter.started[1]) == 9 and starter.latest(1).running)
    assert time.sleeps == [1.0] * 8
    parent.stop()
    assert await running == OK


async def test_a_process_that_keeps_dying_ends_the_pod_with_its_exit_code():
    """One restart more than the policy allows within the window: the others are stopped as at
    SIGTERM and the parent exits non-zero (here Kafka unreachable, 3), so Kubernetes sees a
    crash loop instead of a pod serving with a process missing."""
    starter, time = FakeStarter(dying(100, UNREACHABLE)), FakeTime()
    parent, metrics = supervisor(starter, time)
    code = await asyncio.wait_for(parent.run(), 5)
    assert code == UNREACHABLE
    assert len(starter.started[1]) == POLICY.max_restarts + 1
    assert restarts(metrics, 1) == POLICY.max_restarts
    [other] = starter.started[0]
    assert other.signals == [signal.SIGTERM]
    assert starter.running() == []


async def test_a_crash_loop_of_a_signal_exits_1():
    """A process killed again and again (OOM, say): the pod's exit code is 1."""
    starter = FakeStarter(dying(100, -signal.SIGKILL))
    parent, _ = supervisor(starter)
    assert await asyncio.wait_for(parent.run(), 5) == NOT_SUCCEEDED


async def test_the_first_signal_reaches_every_process_once_and_none_is_started_again():
    """stop(): SIGTERM to each process, which drains and exits 0; the pod exits 0, and no exit
    of a drain counts as a restart."""
    starter = FakeStarter()
    parent, metrics = supervisor(starter, count=3)
    running = asyncio.create_task(parent.run())
    await until(lambda: len(starter.running()) == 3)
    parent.stop()
    parent.stop()  # a second call of the first kind changes nothing
    assert await asyncio.wait_for(running, 5) == OK
    for index in range(3):
        [process] = starter.started[index]
        assert process.signals == [signal.SIGTERM]
        assert restarts(metrics, index) == 0


async def test_a_stop_during_a_backoff_starts_nothing_more():
    """A process waiting for its restart when the pod stops is not started again, and its
    earlier crash does not make the drain of the others look failed."""
    starter = FakeStarter(dying(1, -signal.SIGKILL))
    held = asyncio.Event()

    async def never(_: float) -> None:
        held.set()
        await asyncio.Event().wait()

    parent, _ = supervisor(starter, sleep=never)  # a backoff that only a stop ends
    running = asyncio.create_task(parent.run())
    await asyncio.wait_for(held.wait(), 5)
    parent.stop()
    assert await asyncio.wait_for(running, 5) == OK
    assert len(starter.started[1]) == 1


async def test_a_second_signal_is_passed_on_again():
    """force(): each process gets the second SIGTERM (a worker's forced exit) and the pod exits
    with their code."""
    starter = FakeStarter(lambda _, process: setattr(process, "on_sigterm", None))
    parent, _ = supervisor(starter)
    running = asyncio.create_task(parent.run())
    await until(lambda: len(starter.running()) == 2)
    parent.stop()
    await asyncio.sleep(0.01)
    assert not running.done()  # still draining
    parent.force()
    for process in starter.running():
        assert process.signals == [signal.SIGTERM, signal.SIGTERM]
        process.exit(NOT_SUCCEEDED)
    assert await asyncio.wait_for(running, 5) == NOT_SUCCEEDED


async def test_processes_still_running_after_the_bound_are_killed():
    """A drain that overruns the shutdown bound: the parent SIGKILLs what still runs, so the
    pod exits before the kubelet's grace period ends; the exit code says it failed."""
    starter = FakeStarter(lambda _, process: setattr(process, "on_sigterm", None))
    parent, _ = supervisor(starter, shutdown_bound=0.05)
    running = asyncio.create_task(parent.run())
    await until(lambda: len(starter.running()) == 2)
    parent.stop()
    assert await asyncio.wait_for(running, 5) == NOT_SUCCEEDED
    for index in range(2):
        [process] = starter.started[index]
        assert process.signals == [signal.SIGTERM, signal.SIGKILL]


async def test_a_forced_exit_that_overruns_its_bound_is_killed():
    """After the second signal the (shorter) forced bound applies."""
    starter = FakeStarter(lambda _, process: setattr(process, "on_sigterm", None))
    parent, _ = supervisor(starter, forced_bound=0.05)
    running = asyncio.create_task(parent.run())
    await until(lambda: len(starter.running()) == 2)
    parent.stop()
    parent.force()
    assert await asyncio.wait_for(running, 5) == NOT_SUCCEEDED
    assert all(p.signals[-1] == signal.SIGKILL for p in starter.started[0] + starter.started[1])


async def test_a_process_started_while_the_pod_stops_is_stopped_at_once():
    """A stop that comes while a process is being started reaches it as soon as it exists."""
    starter = FakeStarter()
    gate = asyncio.Event()
    spawn = starter.spawn

    async def slow_spawn(index: int) -> FakeProcess:
        await gate.wait()
        return await spawn(index)

    parent, _ = supervisor(starter, count=1, spawn=slow_spawn)  # held while starting
    running = asyncio.create_task(parent.run())
    await asyncio.sleep(0.01)
    parent.stop()
    gate.set()
    assert await asyncio.wait_for(running, 5) == OK
    assert starter.latest(0).signals == [signal.SIGTERM]
