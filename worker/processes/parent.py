"""`convoai-worker run --processes N`: the parent of a pod's N worker processes.

It starts the processes (`worker.processes.children`), keeps them running
(`worker.processes.supervisor`), serves the pod's ops port from what they answer
(`worker.processes.ops`), and passes signals on: the first drains every process within the
worker's own shutdown bound (`worker.deadlines`), the second makes them exit at once. It runs
no command itself and holds no Kafka connection.
"""

from __future__ import annotations

import asyncio
import signal
import tempfile
from collections.abc import Sequence
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry

from worker.api.tenants import Tenants
from worker.deadlines import FORCED_EXIT_SECONDS, PARENT_MARGIN_SECONDS
from worker.kafka.timing import GroupTiming
from worker.logging import mask_values
from worker.metrics import Metrics
from worker.observability.server import ClientLimits, OpsServer, ops_app
from worker.processes.children import WorkerProcesses
from worker.processes.metrics import PodMetrics
from worker.processes.ops import (
    PodHealth,
    ProcessLinks,
    WebhookForwarder,
    metrics_handler,
    probe,
)
from worker.processes.supervisor import Supervisor
from worker.settings import Settings

log = structlog.get_logger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def serve(settings: Settings, flags: Sequence[str]) -> int:
    """Run the processes until a signal or a crash loop; the pod's exit code.

    Raises `ListenError` when the ops port cannot be bound (before any process starts).
    """
    deadlines = GroupTiming.from_settings(settings).deadlines
    metrics = Metrics(CollectorRegistry())
    tenants = Tenants.from_settings(settings)
    mask_values(tenants.secrets)
    with tempfile.TemporaryDirectory(prefix="convoai-processes-") as directory:
        processes = WorkerProcesses(settings, flags, Path(directory))
        supervisor = Supervisor(
            settings.processes,
            processes.spawn,
            metrics,
            shutdown_bound=deadlines.processes_bound,
            forced_bound=FORCED_EXIT_SECONDS + PARENT_MARGIN_SECONDS,
        )
        sockets = [processes.socket(slot.index) for slot in supervisor.slots]
        async with ProcessLinks(sockets) as links:
            health = PodHealth(supervisor.slots, links)
            webhooks = WebhookForwarder(
                tenants,
                metrics,
                supervisor.slots,
                links,
                max_body_bytes=settings.webhook_max_body_bytes,
                max_concurrent=settings.webhook_max_concurrent,
            )
            pod = PodMetrics(metrics.registry)
            app = ops_app(
                metrics_handler(pod, supervisor.slots, links),
                probe(health.liveness),
                probe(health.readiness),
                webhooks,
            )
            seen = 0

            def on_signal(signum: int) -> None:
                nonlocal seen
                seen += 1
                name = signal.Signals(signum).name
                if seen == 1:
                    bound = round(deadlines.processes_bound, 1)
                    log.info("shutdown_requested", signal=name, bound_seconds=bound)
                    health.stopping()
                    supervisor.stop()
                else:
                    log.warning("shutdown_forced", signal=name)
                    supervisor.force()

            loop = asyncio.get_running_loop()
            for signum in SIGNALS:
                loop.add_signal_handler(signum, on_signal, signum)
            try:
                limits = ClientLimits(settings.http_header_timeout_seconds)
                async with OpsServer(app, settings.http_host, settings.http_port, limits=limits):
                    log.info("processes_starting", processes=settings.processes)
                    return await supervisor.run()
            finally:
                for signum in SIGNALS:
                    loop.remove_signal_handler(signum)
