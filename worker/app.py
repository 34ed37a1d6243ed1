"""The worker process: builds the parts, and owns the order of startup and shutdown.

Startup: producer sink → ops server (so probes answer while starting) → topics → agent
directory from the state topic → dedupe memory from the results topic → API client → consumer;
before the topics, the worker waits for Kafka (`CONVOAI_STARTUP_TIMEOUT_SECONDS`).
Background tasks (committer, followers, state housekeeping, reconciler, loop monitor) run under
a `Supervisor`.

The process moves starting → running → draining → closing → closed (`phase`, logged):
`request_stop()`, all a first signal does, turns the worker not ready and makes the consumer
release every partition (queued work dropped, running work finished within the drain grace or
interrupted, everything finished committed; a rebalance meanwhile joins that release, see
`worker.pipeline.consumer`). Then closing: the background tasks stop, the consumer leaves the
group, and the API client, the readers, the ops server and the producer close — in that order,
so nothing runs or publishes after what it needs is closed. A forced exit (the main task
cancelled, on a second signal) kills all command work first and publishes nothing more; every
step of closing is bounded, and `worker.commands.run` keeps a watchdog on the whole.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack

import structlog

from contracts import AgentStateEvent
from worker.agents.directory import AgentDirectory
from worker.agents.housekeeping import StateHousekeeper
from worker.agents.ports import Refused
from worker.agents.reconcile import Reconciler
from worker.agents.records import StateRecords
from worker.agents.state_sink import DirectoryStateSink
from worker.agents.webhooks import WebhookReceiver
from worker.api.client import ConvoAIClient
from worker.api.observer import ApiObserver
from worker.api.rotation import CredentialsWatcher
from worker.api.tenants import Tenants
from worker.execution import Executor
from worker.execution.caller import ApiSender
from worker.kafka.aio import AioKafkaBackend
from worker.kafka.ports import KafkaBackend
from worker.logging import mask_values
from worker.metrics import Metrics
from worker.observability.health import Health
from worker.observability.loop_monitor import monitor_loop
from worker.observability.server import ClientLimits, OpsServer, build_ops_app
from worker.pipeline.consumer import CommandConsumer
from worker.pipeline.dedupe import CompletedCommands, newest, remember_results
from worker.pipeline.followers import TopicFollower
from worker.pipeline.outputs import Outputs
from worker.pipeline.processor import CommandProcessor
from worker.pipeline.publisher import Publisher
from worker.settings import Settings
from worker.supervision import Supervisor
from worker.tracing import TracingObserver, build_tracer

log = structlog.get_logger(__name__)

ApiFactory = Callable[[Settings, Tenants], AbstractAsyncContextManager[ApiSender]]


class Worker:
    """One worker process."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        kafka: KafkaBackend | None = None,
        api: ApiFactory = ConvoAIClient,
        ops_socket: str | None = None,
    ) -> None:
        """`ops_socket`: serve the ops routes on this Unix socket instead of the HTTP port (one
        of a pod's several worker processes, whose parent serves the port)."""
        self.settings = settings
        self.metrics = metrics
        self.health = Health(settings)
        self.directory = AgentDirectory()
        self.consumer: CommandConsumer | None = None
        self.phase = "starting"
        self._kafka = kafka or AioKafkaBackend(settings)
        self._api = api
        self._ops_socket = ops_socket
        self._stop_requested = asyncio.Event()

    def _enter(self, phase: str) -> None:
        if phase != self.phase:
            log.info("worker_phase", phase=phase, previous=self.phase)
            self.phase = phase

    def request_stop(self) -> None:
        """Begin a graceful shutdown (safe to call at any time, also during startup)."""
        self._stop_requested.set()
        self.health.stopping()
        if self.phase in ("starting", "running"):
            self._enter("draining")
        if self.consumer is not None:
            self.consumer.request_stop()

    async def run(self) -> None:
        """Run until `request_stop()`, then drain, commit and close everything.

        Raises `FatalError` (after the graceful part) when processing could not go on.
        """
        try:
            await self._run()
        finally:
            self._enter("closed")

    async def _run(self) -> None:
        settings, metrics, health, kafka = self.settings, self.metrics, self.health, self._kafka
        tenants = Tenants.from_settings(settings)  # a bad credentials file stops the start here
        mask_values(tenants.secrets)  # the file's credentials never reach a log line
        async with AsyncExitStack() as stack:
            sink = kafka.output_sink()
            stack.push_async_callback(sink.close)  # also safe for a sink never started
            outputs = Outputs(settings)
            publisher = Publisher(sink, metrics, health)
            state_output = StateOutput(outputs, publisher)
            state_sink = DirectoryStateSink(state_output, self.directory)
            webhooks = WebhookReceiver(
                tenants,
                self.directory,
                state_sink,
                metrics,
                max_body_bytes=settings.webhook_max_body_bytes,
                max_concurrent=settings.webhook_max_concurrent,
            )
            await stack.enter_async_context(
                OpsServer(
                    build_ops_app(metrics, health, webhooks),
                    settings.http_host,
                    settings.http_port,
                    limits=ClientLimits(settings.http_header_timeout_seconds),
                    path=self._ops_socket,
                )
            )
            supervisor = Supervisor(health, metrics)
            stack.push_async_callback(supervisor.close)
            _watch(supervisor, metrics, health, tenants, settings.api_credentials_poll_seconds)

            if not await kafka.wait_for_cluster(self._stop_requested):
                return  # stopped while waiting for Kafka: nothing started that needs draining
            created = await kafka.ensure_topics()
            if created:
                log.info("topics_created", topics=created)
            await sink.start()
            health.producer_ready(True)

            completed, results = await self._rebuild_memory(stack, supervisor, state_output)

            client = await stack.enter_async_context(self._api(settings, tenants))
            tracer = build_tracer(settings)
            if tracer is not None:
                stack.callback(tracer.shutdown)  # export what is left, last
            executor = self._executor(client, tenants, traced=tracer is not None)
            reconciler = Reconciler(
                settings.reconcile_interval_seconds,
                self.directory,
                executor.read_status,
                state_sink,
            )
            supervisor.start("reconciler", reconciler.run)

            processor = CommandProcessor(
                executor,
                outputs,
                publisher,
                completed,
                metrics,
                default_app_id=settings.app_id,
                tracer=tracer,
            )
            consumer = CommandConsumer(
                kafka.command_source(),
                processor,
                settings,
                metrics,
                health,
                catch_up=functools.partial(results.catch_up, newest(settings.dedupe_capacity)),
            )
            stack.push_async_callback(consumer.close)  # leave the group once work is released
            stack.push_async_callback(supervisor.close)  # the committer stops before leaving
            stack.push_async_callback(consumer.abort)  # forced exits: no command work survives
            await consumer.start()
            self.consumer = consumer
            supervisor.start("committer", consumer.commit_loop)
            if self._stop_requested.is_set():
                consumer.request_stop()
            else:
                self._enter("running")
            log.info("worker_started", topic=settings.topic_commands, group=settings.group_id)
            try:
                await consumer.run()
            finally:
                health.stopping()
                self._enter("closing")
            if consumer.fatal is not None:
                raise consumer.fatal

    def _executor(self, client: ApiSender, tenants: Tenants, *, traced: bool) -> Executor:
        """The executor, reporting API attempts to the metrics (and to the command's trace)."""
        metrics = self.metrics
        observer: ApiObserver = TracingObserver(metrics) if traced else metrics
        return Executor(client, self.settings, self.directory, observer=observer, tenants=tenants)

    async def _rebuild_memory(
        self,
        stack: AsyncExitStack,
        supervisor: Supervisor,
        state_output: StateOutput,
    ) -> tuple[CompletedCommands, TopicFollower]:
        """Load the agent directory and the dedupe memory from their topics; keep the directory
        current (and the state topic tidy) in the background; returns the dedupe memory and
        the results follower (caught up at each assignment)."""
        settings, kafka = self.settings, self._kafka
        state_records = StateRecords(self.directory)
        states = TopicFollower(
            kafka.topic_reader(settings.topic_state, "state-follower"), state_records
        )
        stack.push_async_callback(states.close)
        completed = CompletedCommands(settings.dedupe_capacity)
        results = TopicFollower(
            kafka.topic_reader(settings.topic_results, "results-follower"),
            remember_results(completed, settings.topic_dlq),
        )
        stack.push_async_callback(results.close)
        within = settings.startup_timeout_seconds
        agents = await states.load(within=within)
        remembered = await results.load(newest(settings.dedupe_capacity), within=within)
        log.info(
            "worker_state_loaded",
            state_events=agents,
            agents=len(self.directory),
            completed_commands=remembered,
        )
        supervisor.start("state-follower", states.follow)
        housekeeper = StateHousekeeper(
            self.directory,
            state_records,
            state_output,
            self.metrics,
            retention_seconds=settings.state_retention_seconds,
        )
        supervisor.start("state-housekeeper", housekeeper.run)
        return completed, results


class StateOutput:
    """The agent side's `StatePublisher`: the pipeline's state records and publisher."""

    def __init__(self, outputs: Outputs, publisher: Publisher) -> None:
        self._outputs = outputs
        self._publisher = publisher

    async def publish(
        self, states: Sequence[AgentStateEvent], tombstones: Sequence[str] = ()
    ) -> list[Refused]:
        """Deliver the states and tombstones; return those refused for good."""
        records = [
            *(self._outputs.state(state) for state in states),
            *(self._outputs.tombstone(agent_id) for agent_id in tombstones),
        ]
        return [
            Refused(
                refused.record.topic,
                (refused.record.key or b"").decode(errors="replace"),
                refused.error,
            )
            for refused in await self._publisher.deliver(records)
        ]


def _watch(
    supervisor: Supervisor, metrics: Metrics, health: Health, tenants: Tenants, poll: float
) -> None:
    """Start the tasks that watch the worker's surroundings: the event loop's lag, and the
    credentials files (a rotated Secret takes effect without a restart)."""
    supervisor.start("loop-monitor", lambda: monitor_loop(metrics, health))
    supervisor.start("credentials", CredentialsWatcher(tenants, poll, mask_values).run)
