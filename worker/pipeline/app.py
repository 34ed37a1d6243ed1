"""The worker process: wires the parts together and owns startup and shutdown order.

Startup: ops server (so probes answer while starting) → topics → producer → agent directory
from the state topic → dedupe warm-up → API client → consumer. Shutdown runs in reverse through
an `AsyncExitStack`: the consumer drains and commits first, the producer flushes after it, the ops
server goes last. `request_stop()` is all a signal handler does.
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import msgspec
import structlog

from contracts import AgentStateEvent, decode_command
from worker.api.client import ConvoAIClient
from worker.execution import Executor
from worker.execution.names import AgentDirectory
from worker.metrics import Metrics
from worker.observability.health import Health
from worker.observability.loop_monitor import monitor_loop
from worker.observability.reconcile import AgentStatusCheck, Reconciler
from worker.observability.server import OpsServer, build_ops_app
from worker.observability.webhooks import WebhookReceiver
from worker.pipeline.consumer import CommandConsumer
from worker.pipeline.dedupe import CompletedCommands, warm_from_results
from worker.pipeline.directory import StateFollower
from worker.pipeline.processor import CommandProcessor
from worker.pipeline.publisher import EventPublisher, make_producer
from worker.pipeline.topics import ensure_topics
from worker.settings import Settings

log = structlog.get_logger(__name__)


class _StateSink:
    """Publishes state events from webhooks and reconciliation; returns once acknowledged."""

    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher

    async def publish_state(self, event: AgentStateEvent) -> None:
        await (await self._publisher.state(event))


class Worker:
    """One worker process."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.health = Health(settings)
        self.directory = AgentDirectory()
        self.consumer: CommandConsumer | None = None
        self._stop_requested = asyncio.Event()

    def request_stop(self) -> None:
        """Begin a graceful shutdown (safe to call at any time, also during startup)."""
        self._stop_requested.set()
        if self.consumer is not None:
            self.consumer.request_stop()

    async def run(self) -> None:
        """Run until `request_stop()`, then drain, commit and close everything."""
        settings, metrics = self.settings, self.metrics
        async with AsyncExitStack() as stack:
            producer = make_producer(settings)
            stack.push_async_callback(producer.stop)  # also closes a producer never started
            publisher = EventPublisher(producer, settings, metrics)
            sink = _StateSink(publisher)
            webhooks = WebhookReceiver(
                settings.webhook_secret, sink, metrics, app_id=settings.app_id
            )
            await stack.enter_async_context(
                OpsServer(
                    build_ops_app(metrics, self.health, webhooks),
                    settings.http_host,
                    settings.http_port,
                )
            )
            stack.push_async_callback(
                _cancel, asyncio.create_task(monitor_loop(metrics, self.health))
            )

            created = await ensure_topics(settings)
            if created:
                log.info("topics_created", topics=created)
            await producer.start()
            self.health.producer_ready(True)

            follower = StateFollower(settings, self.directory)
            agents = await follower.start()
            stack.push_async_callback(follower.stop)
            completed = CompletedCommands(settings.dedupe_capacity)
            remembered = await warm_from_results(settings, completed)
            log.info("worker_state_loaded", state_events=agents, completed_commands=remembered)

            client = await stack.enter_async_context(ConvoAIClient(settings))
            executor = Executor(client, settings, self.directory, observer=metrics)
            reconciler = Reconciler(
                settings.reconcile_interval_seconds,
                self.directory,
                _status_check(executor),
                sink,
            )
            stack.push_async_callback(_cancel, asyncio.create_task(reconciler.run()))

            processor = CommandProcessor(executor, publisher, completed, metrics)
            consumer = CommandConsumer(settings, metrics, self.health, processor)
            await consumer.start()
            stack.push_async_callback(consumer.close)
            self.consumer = consumer
            if self._stop_requested.is_set():
                consumer.request_stop()
            log.info("worker_started", topic=settings.topic_commands, group=settings.group_id)
            await consumer.run()
            # not ready any more: no new webhooks while the rest shuts down
            self.health.producer_ready(False)
            log.info("worker_stopping")


def _status_check(executor: Executor) -> AgentStatusCheck:
    """Ask the API for an agent's status through the same executor commands use."""

    async def check(app_id: str, agent_id: str) -> str | None:
        command = {
            "command": "agent.get",
            "id": f"reconcile-{uuid.uuid4().hex}",
            "agent_id": agent_id,
        }
        if app_id:
            command["app_id"] = app_id
        decoded = decode_command(msgspec.json.encode(command))
        result = (await executor.execute(decoded, received_at=datetime.now(UTC))).result
        if result.outcome == "succeeded" and isinstance(result.data, dict):
            status = result.data.get("status")
            return status if isinstance(status, str) else None
        if result.error is not None and result.error.http_status == 404:
            return "STOPPED"
        return None

    return check


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
