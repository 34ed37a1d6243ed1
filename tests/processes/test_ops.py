"""The pod's one ops port, served by the parent from real worker ops servers on Unix sockets:
probes from theirs, /metrics merged, webhooks verified by the parent and handled by one of them."""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.observability.fakes import (
    DEFAULTS,
    RecordingSink,
    counted,
    joined,
    new_metrics,
    signed,
    tenants,
    webhook_receiver,
)
from tests.processes.fakes import FakeProcess
from worker.metrics import Metrics
from worker.observability.health import Health
from worker.observability.server import OpsServer, build_ops_app, ops_app
from worker.processes.metrics import PodMetrics
from worker.processes.ops import (
    PodHealth,
    ProcessLinks,
    WebhookForwarder,
    metrics_handler,
    probe,
)
from worker.processes.supervisor import Slot


@dataclass
class Process:
    """One worker process's ops server, as a child of the parent serves it."""

    health: Health
    metrics: Metrics
    sink: RecordingSink
    server: OpsServer | None


@dataclass
class Pod:
    url: str
    session: aiohttp.ClientSession
    slots: list[Slot]
    processes: list[Process]
    metrics: Metrics  # the parent's
    health: PodHealth

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.url + path) as response:
            return response.status, await response.json()

    async def post(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        headers = signed(body) if headers is None else headers
        url = self.url + "/webhooks/agora"
        async with self.session.post(url, data=body, headers=headers) as response:
            return response.status, await response.json()

    def exited(self, index: int, code: int = -signal.SIGKILL) -> None:
        """Process `index` exited and waits for its restart."""
        slot = self.slots[index]
        slot.child, slot.state, slot.exit_code, slot.restart_in = None, "restarting", code, 2.0

    async def close(self, index: int) -> None:
        """Process `index` stops answering (its server is gone, the process still runs)."""
        server = self.processes[index].server
        assert server is not None
        await server.__aexit__(None, None, None)
        self.processes[index].server = None


def ready_health() -> Health:
    health = Health(DEFAULTS)
    health.producer_ready(True)
    health.group_state(joined=True, assigned_partitions=2)
    return health


@pytest.fixture
async def pod() -> AsyncIterator[Pod]:
    """Two worker processes behind the parent's ops port on loopback."""
    directory = Path(tempfile.mkdtemp(prefix="pod-", dir="/tmp"))  # short: a socket path is
    sockets = [directory / f"{index}.sock" for index in range(2)]  # at most ~100 bytes
    processes = []
    for socket in sockets:
        own, metrics, sink = ready_health(), new_metrics(), RecordingSink()
        app = build_ops_app(metrics, own, webhook_receiver(sink, metrics))
        server = await OpsServer(app, "", 0, path=str(socket)).__aenter__()
        processes.append(Process(own, metrics, sink, server))
    slots = [Slot(index) for index in range(2)]
    for index, slot in enumerate(slots):
        slot.child, slot.state = FakeProcess(1000 + index), "running"
    metrics = new_metrics()
    try:
        async with ProcessLinks(sockets) as links, aiohttp.ClientSession() as session:
            health = PodHealth(slots, links)
            limits = {
                "max_body_bytes": DEFAULTS.webhook_max_body_bytes,
                "max_concurrent": DEFAULTS.webhook_max_concurrent,
            }
            webhooks = WebhookForwarder(tenants(), metrics, slots, links, **limits)
            app = ops_app(
                metrics_handler(PodMetrics(metrics.registry), slots, links),
                probe(health.liveness),
                probe(health.readiness),
                webhooks,
            )
            async with OpsServer(app, "127.0.0.1", 0) as server:
                url = f"http://127.0.0.1:{server.port}"
                yield Pod(url, session, slots, processes, metrics, health)
    finally:
        for process in processes:
            if process.server is not None:
                await process.server.__aexit__(None, None, None)
        shutil.rmtree(directory)


class TestProbes:
    async def test_ready_when_every_process_is_ready_with_each_ones_answer(self, pod: Pod):
        status, body = await pod.get("/readyz")
        assert (status, body["reason"]) == (200, "ok")
        answers = body["details"]["processes"]
        assert [(a["process"], a["pid"], a["ok"]) for a in answers] == [
            (0, 1000, True),
            (1, 1001, True),
        ]
        assert answers[1]["details"]["assigned_partitions"] == 2

    async def test_a_process_not_ready_makes_the_pod_not_ready_and_is_named(self, pod: Pod):
        pod.processes[1].health.group_state(joined=False, assigned_partitions=0)
        status, body = await pod.get("/readyz")
        assert (status, body["reason"]) == (503, "process 1: consumer group not joined")

    async def test_a_process_waiting_for_its_restart_is_not_ready_but_alive(self, pod: Pod):
        """The parent restarts it: no reason for the kubelet to restart the pod."""
        pod.exited(1)
        status, body = await pod.get("/readyz")
        reason = "process 1: exited with code -9, restarting in 2 s"
        assert (status, body["reason"]) == (503, reason)
        assert (await pod.get("/livez"))[0] == 200

    async def test_a_process_blocked_makes_the_pod_not_alive(self, pod: Pod):
        pod.processes[0].health.loop_lag(10.0)
        status, body = await pod.get("/livez")
        assert status == 503
        assert body["reason"].startswith("process 0: event loop blocked")

    async def test_a_process_that_answered_and_went_silent_is_not_alive(self, pod: Pod):
        """Still running, no longer answering: its loop is stuck (here its server is gone)."""
        assert (await pod.get("/livez"))[0] == 200
        await pod.close(1)
        status, body = await pod.get("/livez")
        assert (status, body["reason"]) == (503, "process 1: no answer within 2.5 s")

    async def test_a_process_still_starting_is_alive_and_not_ready(self, pod: Pod):
        """Running but not listening yet (it never answered): starting, not stuck."""
        await pod.close(1)
        pod.slots[1].child = FakeProcess(2001)  # a new process, not listening yet
        assert (await pod.get("/livez"))[0] == 200
        status, body = await pod.get("/readyz")
        assert (status, body["reason"]) == (503, "process 1: starting")

    async def test_not_ready_from_the_first_signal_on(self, pod: Pod):
        pod.health.stopping()
        status, body = await pod.get("/readyz")
        assert (status, body["reason"]) == (503, "shutting down")


class TestWebhooks:
    async def test_the_first_process_publishes_and_its_answer_is_relayed(self, pod: Pod):
        """Accepted once the process's sink (Kafka) has it; a redelivery is its duplicate; the
        process counts the verdicts, not the parent."""
        body = joined()
        assert await pod.post(body) == (200, {"ok": True, "verdict": "accepted"})
        assert await pod.post(body) == (200, {"ok": True, "verdict": "duplicate"})
        first, second = pod.processes
        assert [e.agent_id for e in first.sink.events] == ["A42"]
        assert second.sink.attempts == 0
        assert counted(first.metrics, "101", "accepted") == 1
        assert counted(pod.metrics, "101", "accepted") == 0

    async def test_the_parent_refuses_what_a_worker_refuses_before_any_process_sees_it(
        self, pod: Pod
    ):
        status, body = await pod.post(joined(), headers={"Content-Type": "application/json"})
        assert (status, body["verdict"]) == (401, "bad_signature")
        assert counted(pod.metrics, "unknown", "bad_signature") == 1
        assert counted(pod.processes[0].metrics, "unknown", "bad_signature") == 0
        assert pod.processes[0].sink.attempts == 0

    @pytest.mark.parametrize("down", ["exited", "not listening"])
    async def test_the_next_process_takes_them_while_the_first_is_down(self, pod: Pod, down):
        if down == "exited":
            pod.exited(0)
        else:
            await pod.close(0)
        assert await pod.post(joined()) == (200, {"ok": True, "verdict": "accepted"})
        assert [e.agent_id for e in pod.processes[1].sink.events] == ["A42"]

    async def test_without_any_process_the_answer_is_503_and_agora_retries(self, pod: Pod):
        pod.exited(0)
        pod.exited(1)
        status, body = await pod.post(joined())
        assert (status, body["verdict"]) == (503, "unavailable")
        assert counted(pod.metrics, "unknown", "unavailable") == 1


async def test_metrics_add_up_the_processes(pod: Pod):
    """Commands completed by each process, as one series on the pod's port."""
    for count, process in zip((3, 4), pod.processes, strict=True):
        process.metrics.completed("agent.speak", "succeeded").inc(count)
    async with pod.session.get(pod.url + "/metrics") as response:
        text = await response.text()
    line = 'convoai_commands_completed_total{command="agent.speak",outcome="succeeded"} 7.0'
    assert line in text.splitlines()
