"""`convoai-worker run`: the worker process.

Signals only flip state: the first SIGTERM/SIGINT asks the worker to stop fetching and drain
(within `CONVOAI_DRAIN_GRACE_SECONDS`), the second cancels the drain and exits at once. Records
whose results were not published are not committed in either case, so Kafka redelivers them.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import structlog
from aiokafka.errors import KafkaConnectionError
from prometheus_client import CollectorRegistry

from worker.app import Worker
from worker.errors import FatalError
from worker.event_loop import run_async
from worker.kafka.connection import diagnose
from worker.kafka.topics import MissingTopicsError
from worker.logging import configure_logging
from worker.metrics import Metrics
from worker.settings import SettingsError, load_settings

log = structlog.get_logger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags override the matching CONVOAI_* variables."""
    parser.add_argument("--bootstrap", dest="kafka_bootstrap", help="Kafka bootstrap servers")
    parser.add_argument("--group", dest="group_id", help="consumer group id")
    parser.add_argument(
        "--http-port", dest="http_port", type=int, help="metrics/health/webhook port"
    )
    parser.add_argument("--api-base-url", dest="api_base_url", help="ConvoAI API base URL")


def run(args: argparse.Namespace) -> int:
    """Start the worker and block until it has shut down."""
    settings = load_settings(
        kafka_bootstrap=args.kafka_bootstrap,
        group_id=args.group_id,
        http_port=args.http_port,
        api_base_url=args.api_base_url,
    )
    configure_logging(settings)
    log.info("worker_configuring", settings=settings.redacted())
    worker = Worker(settings, Metrics(CollectorRegistry()))
    return run_async(_serve(worker))


async def _serve(worker: Worker) -> int:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            log.info("shutdown_requested", signal=signal.Signals(signum).name)
            worker.request_stop()
        elif main is not None:
            log.warning("shutdown_forced", signal=signal.Signals(signum).name)
            main.cancel()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await worker.run()
    except asyncio.CancelledError:
        return 1
    except KafkaConnectionError:
        # aiokafka says only "Unable to bootstrap"; name the cause instead of a traceback
        log.error("worker_cannot_start", error=await diagnose(worker.settings))  # noqa: TRY400
        return 1
    except (MissingTopicsError, SettingsError) as error:
        # configuration problems: say what is wrong, a traceback would only hide it
        log.error("worker_cannot_start", error=str(error))  # noqa: TRY400 - see above
        return 1
    except FatalError as error:
        log.error("worker_exiting", reason=str(error))  # noqa: TRY400 - logged when it happened
        return 1
    except Exception:
        log.exception("worker_failed")
        return 1
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info("worker_stopped")
    return 0
