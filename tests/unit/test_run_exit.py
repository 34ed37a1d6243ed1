"""How `run` ends when the worker's task is cancelled: by a second signal, or by a leak."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from tests.logs import captured_logs
from tests.unit.test_kafka_stop import cancel_own_request
from worker.commands import run as run_command
from worker.commands.exit_codes import NOT_SUCCEEDED
from worker.settings import Settings


class CancelledWorker:
    """A worker whose run ends with a cancellation that no signal asked for (a library's task
    cancelled on its own, the way aiokafka's stop can leak one)."""

    settings = Settings()
    phase = "closing"

    async def run(self) -> None:
        await cancel_own_request()

    def request_stop(self) -> None:
        raise AssertionError("no signal was sent")


async def test_a_cancellation_no_signal_asked_for_is_logged_as_a_failure() -> None:
    worker: Any = CancelledWorker()
    with captured_logs(run_command) as logs:
        code = await asyncio.create_task(run_command._serve(worker))
    assert code == NOT_SUCCEEDED
    (failed,) = [line for line in logs if line["event"] == "worker_failed"]
    assert failed["log_level"] == "error"
    assert failed["exc_info"] is True


class StuckWorker:
    """A worker that does not stop when asked: only a second signal ends it."""

    settings = Settings()
    phase = "draining"

    def __init__(self) -> None:
        self.running = asyncio.Event()
        self.stop_requests = 0

    async def run(self) -> None:
        self.running.set()
        await asyncio.sleep(3600)

    def request_stop(self) -> None:
        self.stop_requests += 1


async def test_a_second_signal_cancels_the_worker_without_calling_it_a_failure() -> None:
    worker: Any = StuckWorker()
    with captured_logs(run_command) as logs:
        serving = asyncio.create_task(run_command._serve(worker))
        await worker.running.wait()
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.05)
        code = await serving
    assert (code, worker.stop_requests) == (NOT_SUCCEEDED, 1)
    assert [line["event"] for line in logs] == ["shutdown_requested", "shutdown_forced"]
