"""Whole workers on the in-memory broker with a scripted API: deterministic group scenarios.

`ScriptedApi` answers every request at once unless a test holds a gate for it; it records what
reached it, so a test counts API calls per command. Commands carry their id in a field the API
echoes (`text` for speak and think, the agent id for agent.get), which is how calls are matched
to commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Self

import msgspec
from prometheus_client import CollectorRegistry

from contracts import ResultEvent, decode_result
from contracts.keys import ordering_key
from worker.api.client import ApiResponse
from worker.api.requests import ApiRequest
from worker.api.tenants import Tenants
from worker.app import Worker
from worker.kafka.memory import InMemoryBroker, MemoryBackend
from worker.metrics import Metrics
from worker.settings import Settings

APP_ID = "component-app"
WITHIN_SECONDS = 10.0


class ScriptedApi:
    """An `ApiSender`: answers 200 at once, except for requests whose marker has a closed gate."""

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.requests: list[ApiRequest] = []
        self._gates: dict[str, asyncio.Event] = {}
        self.entered: dict[str, asyncio.Event] = {}
        self.body_for: dict[str, Any] = {}
        self.failures: dict[str, list[Exception]] = {}  # raised, in order, before answering
        self.tenants: Tenants | None = None  # the worker's, as the real client gets them
        self.signed: list[str | None] = []  # the `Authorization` each request would carry

    def hold(self, marker: str) -> asyncio.Event:
        """Make requests carrying `marker` wait until the returned event is set."""
        self.entered[marker] = asyncio.Event()
        return self._gates.setdefault(marker, asyncio.Event())

    def calls(self, marker: str) -> int:
        """How many requests carrying `marker` reached the API."""
        return sum(1 for request in self.requests if marker_of(request) == marker)

    def repeated(self) -> Counter[str]:
        """Markers that reached the API more than once, with their extra calls."""
        seen = Counter(marker_of(request) for request in self.requests)
        return Counter({m: n - 1 for m, n in seen.items() if n > 1})

    async def send(self, request: ApiRequest, *, time_left: float | None = None) -> ApiResponse:
        """Record the request; wait at its gate if it has one; answer like the API."""
        del time_left
        self.requests.append(request)
        if self.tenants is not None:
            self.signed.append(self.tenants.authorization(request.app_id))
        marker = marker_of(request)
        gate = self._gates.get(marker)
        if gate is not None:
            self.entered[marker].set()
            await gate.wait()
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.failures.get(marker):
            raise self.failures[marker].pop(0)
        body = self.body_for.get(marker, {"agent_id": marker, "status": "RUNNING"})
        return ApiResponse(200, body, f"req-{len(self.requests)}")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def marker_of(request: ApiRequest) -> str:
    """What identifies the command behind a request: speak/think text, else the agent id."""
    if request.body:
        text = msgspec.json.decode(request.body).get("text")
        if isinstance(text, str):
            return text
    parts = request.path.rstrip("/").split("/")
    return parts[parts.index("agents") + 1] if "agents" in parts[:-1] else parts[-1]


def settings(**overrides: Any) -> Settings:
    """Worker settings for the in-memory broker: short graces, fast retries, any free port."""
    values: dict[str, Any] = {
        "app_id": APP_ID,
        "group_id": "component",
        "http_host": "127.0.0.1",
        "http_port": 0,
        "topic_partitions": 2,
        "kafka_rebalance_timeout_seconds": 5.0,  # revoke grace 2 s (worker.deadlines)
        "kafka_heartbeat_interval_seconds": 0.5,
        "drain_grace_seconds": 2.0,
        "api_backoff_base_seconds": 0.01,
        "api_backoff_max_seconds": 0.05,
        "log_format": "json",
        "log_level": "WARNING",
        **overrides,
    }
    return msgspec.convert(values, Settings)


class RunningWorker:
    """A worker task on the in-memory broker, with the clients it made."""

    def __init__(self, worker: Worker, task: asyncio.Task[None], backend: MemoryBackend) -> None:
        self.worker = worker
        self.task = task
        self.backend = backend

    async def stop(self) -> None:
        """Graceful stop, as on SIGTERM; re-raises what the worker raised."""
        self.worker.request_stop()
        await asyncio.wait_for(self.task, WITHIN_SECONDS * 2)

    async def crash(self) -> None:
        """Die like a SIGKILLed process: expelled from the group, nothing more published."""
        for source in self.backend.sources:
            self.backend.broker.crash(source)
        for sink in self.backend.sinks:
            sink.closed = True
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def api_factory(api: ScriptedApi) -> Callable[[Settings, Tenants], ScriptedApi]:
    """The worker's API factory: `api` (a scripted one sees the worker's tenants)."""

    def factory(_: Settings, tenants: Tenants) -> ScriptedApi:
        if isinstance(api, ScriptedApi):  # some tests run a real client instead
            api.tenants = tenants
        return api

    return factory


@contextlib.asynccontextmanager
async def running(
    broker: InMemoryBroker, api: ScriptedApi, **overrides: Any
) -> AsyncIterator[RunningWorker]:
    """Start a worker and wait until it is ready; stop it gracefully at the end (if alive)."""
    config = settings(**overrides)
    backend = broker.backend(config)
    worker = Worker(config, Metrics(CollectorRegistry()), kafka=backend, api=api_factory(api))
    task = asyncio.create_task(worker.run())
    handle = RunningWorker(worker, task, backend)
    try:
        await until(lambda: worker.health.readiness().ok or task.done(), "worker ready")
        if task.done():
            task.result()
        yield handle
    finally:
        if not task.done():
            await handle.stop()


async def until(condition: Callable[[], bool], what: str, within: float = WITHIN_SECONDS) -> None:
    """Poll `condition` until it holds; fail naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.005)


async def wait_entered(api: ScriptedApi, marker: str) -> None:
    """Wait until a held request with `marker` reached the API."""
    await asyncio.wait_for(api.entered[marker].wait(), WITHIN_SECONDS)


def produce(
    broker: InMemoryBroker,
    topic: str,
    commands: Iterable[Mapping[str, Any]],
    *,
    partition: int | None = None,
) -> None:
    """Produce commands keyed by the ordering rules (to one partition when given)."""
    for command in commands:
        key = ordering_key(command)
        broker.produce(
            topic,
            msgspec.json.encode(command),
            key=key.encode() if key else None,
            partition=partition,
        )


def results(broker: InMemoryBroker, topic: str = "convoai.results") -> list[ResultEvent]:
    """Every result event on the results topic."""
    return [decode_result(r.value) for r in broker.records(topic) if r.value]


def result_ids(broker: InMemoryBroker) -> Counter[str]:
    """Results per command id."""
    return Counter(r.command_id for r in results(broker))


def gets(prefix: str, count: int) -> list[dict[str, Any]]:
    """`count` agent.get commands, each for its own agent id (the marker)."""
    return [
        {"command": "agent.get", "id": f"{prefix}-{i}", "agent_id": f"{prefix}-{i}"}
        for i in range(count)
    ]
