"""`convoai-worker run`: the worker process.

Signals only flip state: the first SIGTERM/SIGINT asks the worker to stop fetching and drain
(within `CONVOAI_DRAIN_GRACE_SECONDS`), the second kills the work in flight and exits at once,
in whatever phase the worker is. Records whose results were not published are not committed in
either case, so Kafka redelivers them.

A watchdog thread holds the whole shutdown to its bound (`worker.deadlines`: the drain and the
release phases, then each client's bounded stop), and a forced exit to a few seconds: should
any step hang anyway, the process says which phase it was in and exits, so that no third
signal (or the kubelet's SIGKILL) is needed and the pod's grace period is never the limit.

With `--processes N` above 1 the command is the parent of N such workers (`worker.processes`);
each of them is this command again, with the hidden flags `--ops-socket` (its ops routes on a
Unix socket the parent reads) and `--process-index`, and drains when its parent is gone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
from collections.abc import Callable

import structlog
from aiokafka.errors import KafkaConnectionError
from prometheus_client import CollectorRegistry

from worker.app import Worker
from worker.commands.arguments import port, positive_int
from worker.commands.configured import load
from worker.commands.exit_codes import INVALID, NOT_SUCCEEDED, OK, UNREACHABLE
from worker.deadlines import FORCED_EXIT_SECONDS
from worker.errors import FatalError
from worker.event_loop import run_async
from worker.garbage import tune_for_throughput
from worker.kafka.connection import diagnose
from worker.kafka.timing import GroupTiming
from worker.kafka.topics import MissingTopicsError
from worker.logging import configure_logging
from worker.metrics import Metrics
from worker.observability.server import ListenError
from worker.processes.parent import serve as serve_processes
from worker.settings import Settings, SettingsError

log = structlog.get_logger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags override the matching CONVOAI_* variables."""
    for flag, field, kind, text in FLAGS:
        parser.add_argument(flag, dest=field, type=kind, help=text)
    # set by the parent of several worker processes for each of them (worker.processes.children)
    parser.add_argument("--ops-socket", help=argparse.SUPPRESS)
    parser.add_argument("--process-index", type=int, help=argparse.SUPPRESS)


# flag, settings field, argparse type, help: each overrides the field's CONVOAI_* variable
FLAGS: tuple[tuple[str, str, Callable[[str], object], str], ...] = (
    ("--bootstrap", "kafka_bootstrap", str, "Kafka bootstrap servers"),
    ("--group", "group_id", str, "consumer group id"),
    ("--http-port", "http_port", port, "metrics/health/webhook port"),
    ("--api-base-url", "api_base_url", str, "ConvoAI API base URL"),
    ("--processes", "processes", positive_int, "worker processes, one per core (each a member)"),
)
# what the parent of several processes passes on to each (they do not serve the HTTP port)
NOT_PASSED_ON = frozenset({"http_port", "processes"})


def run(args: argparse.Namespace) -> int:
    """Start the worker and block until it has shut down."""
    settings, warnings = load(
        api=True,
        flags={field: flag for flag, field, _, _ in FLAGS},
        **{field: getattr(args, field) for _, field, _, _ in FLAGS},
    )
    configure_logging(settings)
    child = args.ops_socket is not None
    if child:
        structlog.contextvars.bind_contextvars(process=args.process_index)
    else:
        for warning in warnings:  # the parent of several processes logs them once
            log.warning("setting_warning", warning=warning)
    log.info("worker_configuring", settings=settings.redacted())
    if settings.processes > 1:
        return run_async(_parent(settings, passed_on(args)))
    worker = Worker(settings, Metrics(CollectorRegistry()), ops_socket=args.ops_socket)
    tune_for_throughput()
    return run_async(_serve(worker, child=child))


def passed_on(args: argparse.Namespace) -> list[str]:
    """The flags of this command line that each of several worker processes gets too."""
    flags: list[str] = []
    for flag, field, _, _ in FLAGS:
        if field not in NOT_PASSED_ON and getattr(args, field) is not None:
            flags += [flag, str(getattr(args, field))]
    return flags


async def _parent(settings: Settings, flags: list[str]) -> int:
    """The parent of several worker processes, with the exit codes of a single worker."""
    try:
        code = await serve_processes(settings, flags)
    except Exception as error:  # noqa: BLE001 - every way of stopping gets its exit code
        return await _stopped_by(error, settings)
    log.info("worker_stopped", exit_code=code)
    return code


class Watchdog:
    """Ends the process if shutdown overruns its bound, naming the phase it was stuck in."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._timer: threading.Timer | None = None

    def arm(self, seconds: float, what: str) -> None:
        """Exit the process `seconds` from now unless it exited before (re-arming replaces)."""
        self.disarm()
        self._timer = threading.Timer(seconds, self._expire, (seconds, what))
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        """Shutdown finished in time."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, seconds: float, what: str) -> None:
        log.error(
            "shutdown_overran",
            shutdown=what,
            bound_seconds=round(seconds, 1),
            phase=self._worker.phase,
        )
        sys.stdout.flush()
        os._exit(NOT_SUCCEEDED)


async def _serve(worker: Worker, *, child: bool = False) -> int:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    signals_seen = 0
    watchdog = Watchdog(worker)
    deadlines = GroupTiming.from_settings(worker.settings).deadlines
    bound = deadlines.shutdown_bound

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        name = signal.Signals(signum).name
        if signals_seen == 1:
            log.info("shutdown_requested", signal=name, bound_seconds=round(bound, 1))
            watchdog.arm(deadlines.termination_grace, "graceful")
            worker.request_stop()
        elif main is not None:
            log.warning("shutdown_forced", signal=name, phase=worker.phase)
            watchdog.arm(FORCED_EXIT_SECONDS, "forced")
            main.cancel()

    def on_parent_gone() -> None:
        log.warning("parent_gone")
        on_signal(signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    if child:
        watch_parent(loop, sys.stdin.fileno(), on_parent_gone)
    try:
        await worker.run()
    except asyncio.CancelledError:
        if main is not None and not main.cancelling():  # not a second signal: a task's leak
            log.exception("worker_failed")
        return NOT_SUCCEEDED
    except Exception as error:  # noqa: BLE001 - every way of stopping gets its exit code
        return await _stopped_by(error, worker.settings)
    finally:
        watchdog.disarm()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info("worker_stopped")
    return OK


def watch_parent(loop: asyncio.AbstractEventLoop, pipe: int, gone: Callable[[], None]) -> None:
    """Call `gone` once `pipe` (standard input: a pipe from the parent process) reaches its
    end: the parent exited, or was killed, and no signal will come from it."""

    def readable() -> None:
        if not os.read(pipe, 4096):
            loop.remove_reader(pipe)
            gone()

    loop.add_reader(pipe, readable)


async def _stopped_by(error: Exception, settings: Settings) -> int:
    """Log why the worker stopped and return the exit code.

    Problems a user can fix are one line saying what is wrong: a traceback would only hide it.
    """
    if isinstance(error, KafkaConnectionError):
        # aiokafka says only "Unable to bootstrap": connect once more to name the cause
        log.error("worker_cannot_start", error=(await diagnose(settings)).message)
        return UNREACHABLE
    if isinstance(error, MissingTopicsError | SettingsError):
        log.error("worker_cannot_start", error=str(error))
        return INVALID
    if isinstance(error, ListenError):
        message = f"CONVOAI_HTTP_PORT (--http-port): {error.strerror}; choose another port"
        log.error("worker_cannot_start", error=message)
        return INVALID
    if isinstance(error, FatalError):
        log.error("worker_exiting", reason=str(error))  # logged in full when it happened
        return NOT_SUCCEEDED
    log.error("worker_failed", exc_info=error)
    return NOT_SUCCEEDED
