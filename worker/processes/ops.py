"""The pod's one ops port, served by the parent from what its worker processes answer.

- `/metrics`: every process's metrics and the parent's, merged (`worker.processes.metrics`).
- `/readyz`: ready when every process is running and answers its own /readyz with 200; the
  reason names the first process that is not (restarting, starting, or its own reason), and
  the details carry each process's answer. Not ready from the first SIGTERM on.
- `/livez`: alive unless a process answers its own /livez with 503, or one that answered before
  does not answer within `PROCESS_TIMEOUT_SECONDS` (its loop is blocked): the kubelet then
  restarts the pod, as it would a single worker. A process that exited is the parent's to
  restart, not a reason to kill the pod (a crash loop ends the parent itself).
- `/webhooks/agora[/{app_id}]`: the parent admits and verifies each callback as a worker does
  (`WebhookGate`: the same limits, refusals and signature check before anything is forwarded),
  then hands the verified body to the lowest-numbered process that is running, whose receiver
  decodes, dedupes and publishes it and whose answer (200 only once the event is on Kafka) is
  relayed. One process takes them all while it runs, so its memory of notice ids dedupes
  redeliveries; when it is down the next one does (a redelivery it did not see is published
  again, and the agent directory makes it `superseded` or a repeat of the same state).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import msgspec
from aiohttp import web
from prometheus_client.exposition import choose_encoder

from worker.agents.ncs import SIGNATURE_HEADER
from worker.agents.webhook_gate import UNKNOWN_EVENT_TYPE, NoticeSecrets, WebhookGate
from worker.metrics import Metrics
from worker.observability.health import HealthReport
from worker.observability.server import Handler, report_response
from worker.processes.metrics import PodMetrics
from worker.processes.supervisor import Slot

PROCESS_TIMEOUT_SECONDS = 2.5  # a process's probe or scrape; under the kubelet's 3 s timeout
FORWARD_SECONDS = 1.0  # a webhook's answer from the process (its own Kafka budget is 150 ms)
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
BASE = "http://worker"  # the host of a request over a Unix socket (unused)


class ProcessLinks:
    """HTTP to each process's ops routes, over its Unix socket (for an `async with` block)."""

    def __init__(self, sockets: Sequence[Path]) -> None:
        self._sockets = sockets
        self._sessions: list[aiohttp.ClientSession] = []

    async def __aenter__(self) -> ProcessLinks:
        self._sessions = [
            aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(socket), force_close=True)
            )
            for socket in self._sockets
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for session in self._sessions:
            await session.close()

    async def get(
        self, index: int, path: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
        """GET `path` of process `index`: status and body."""
        timeout = aiohttp.ClientTimeout(total=PROCESS_TIMEOUT_SECONDS)
        async with self._sessions[index].get(BASE + path, headers=headers, timeout=timeout) as r:
            return r.status, await r.read()

    async def post(
        self, index: int, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        """POST `body` to `path` of process `index`: status and body."""
        timeout = aiohttp.ClientTimeout(total=FORWARD_SECONDS)
        session = self._sessions[index]
        async with session.post(BASE + path, data=body, headers=headers, timeout=timeout) as r:
            return r.status, await r.read()


class PodHealth:
    """The pod's /livez and /readyz from its processes' own."""

    def __init__(self, slots: Sequence[Slot], links: ProcessLinks) -> None:
        self._slots = slots
        self._links = links
        self._answered: dict[int, int] = {}  # index -> the pid that answered a probe
        self._stopping = False

    def stopping(self) -> None:
        """Shutdown began: not ready from now on."""
        self._stopping = True

    async def liveness(self) -> HealthReport:
        """Alive unless a process says it is not, or stopped answering."""
        answers = await self._ask("/livez")
        problem = None
        for slot, answer in answers:
            if answer is not None and not answer.ok:
                problem = f"process {slot.index}: {answer.reason}"
            elif answer is None and self._silent(slot):
                problem = f"process {slot.index}: no answer within {PROCESS_TIMEOUT_SECONDS:g} s"
            if problem is not None:
                break
        return _report(problem, answers)

    async def readiness(self) -> HealthReport:
        """Ready when every process is running and ready, and the pod is not stopping."""
        answers = await self._ask("/readyz")
        problem = "shutting down" if self._stopping else None
        for slot, answer in answers:
            if problem is not None:
                break
            if slot.child is None:
                problem = f"process {slot.index}: {_not_running(slot)}"
            elif answer is None:
                problem = f"process {slot.index}: " + (
                    f"no answer within {PROCESS_TIMEOUT_SECONDS:g} s"
                    if self._silent(slot)
                    else "starting"
                )
            elif not answer.ok:
                problem = f"process {slot.index}: {answer.reason}"
        return _report(problem, answers)

    def _silent(self, slot: Slot) -> bool:
        """A running process that answered before (not one still starting), while the pod is
        not stopping (a draining process closes its socket at the end)."""
        pid = slot.pid
        return not self._stopping and pid is not None and self._answered.get(slot.index) == pid

    async def _ask(self, path: str) -> list[tuple[Slot, HealthReport | None]]:
        """Every process's answer to a probe (None: not running, or no answer)."""
        answers = await asyncio.gather(*(self._probe(slot, path) for slot in self._slots))
        return list(zip(self._slots, answers, strict=True))

    async def _probe(self, slot: Slot, path: str) -> HealthReport | None:
        pid = slot.pid
        if pid is None:
            return None
        try:
            _, body = await self._links.get(slot.index, path)
            report = msgspec.json.decode(body, type=HealthReport)
        except (aiohttp.ClientError, TimeoutError, msgspec.DecodeError):
            return None
        self._answered[slot.index] = pid
        return report


def _not_running(slot: Slot) -> str:
    if slot.state == "restarting":
        return f"exited with code {slot.exit_code}, restarting in {slot.restart_in:g} s"
    return str(slot.state)


def _report(problem: str | None, answers: list[tuple[Slot, HealthReport | None]]) -> HealthReport:
    processes: list[dict[str, Any]] = [
        {
            "process": slot.index,
            "pid": slot.pid,
            "state": slot.state,
            **({} if answer is None else msgspec.structs.asdict(answer)),
        }
        for slot, answer in answers
    ]
    details = {"processes": processes}
    return HealthReport(ok=problem is None, reason=problem or "ok", details=details)


def probe(report: Callable[[], Awaitable[HealthReport]]) -> Handler:
    """A handler answering with `await report()`."""

    async def handler(_: web.Request) -> web.Response:
        return report_response(await report())

    return handler


def metrics_handler(pod: PodMetrics, slots: Sequence[Slot], links: ProcessLinks) -> Handler:
    """/metrics: scrape every process, then answer the merged families in the format asked."""

    async def scrape(slot: Slot) -> None:
        pid = slot.pid
        if pid is None:
            pod.gone(slot.index)
            return
        try:
            _, body = await links.get(slot.index, "/metrics", {"Accept": OPENMETRICS})
        except (aiohttp.ClientError, TimeoutError):
            pod.gone(slot.index, unless=pid)  # keep its last figures while it runs
            return
        pod.scraped(slot.index, pid, body.decode())

    async def handler(request: web.Request) -> web.Response:
        await asyncio.gather(*(scrape(slot) for slot in slots))
        encoder, content_type = choose_encoder(",".join(request.headers.getall("Accept", [])))
        response = web.Response(body=encoder(pod), headers={"Content-Type": content_type})
        response.enable_compression()
        return response

    return handler


class WebhookForwarder(WebhookGate):
    """Admits and verifies NCS callbacks as a worker does; one process handles each."""

    def __init__(
        self,
        secrets: NoticeSecrets,
        metrics: Metrics,
        slots: Sequence[Slot],
        links: ProcessLinks,
        *,
        max_body_bytes: int,
        max_concurrent: int,
    ) -> None:
        super().__init__(
            secrets, metrics, max_body_bytes=max_body_bytes, max_concurrent=max_concurrent
        )
        self._slots = slots
        self._links = links

    async def accept(
        self, request: web.Request, app_id: str, body: bytes, started: float
    ) -> web.Response:
        """Relay the answer of the lowest-numbered running process that takes the notice."""
        del app_id, started
        headers = {
            SIGNATURE_HEADER: request.headers.get(SIGNATURE_HEADER, ""),
            "Content-Type": request.content_type,
        }
        for slot in self._slots:
            if slot.child is None:
                continue
            try:
                status, answer = await self._links.post(slot.index, request.raw_path, body, headers)
            except aiohttp.ClientConnectorError:
                continue  # not listening (yet): it got nothing, the next one may take it
            except (aiohttp.ClientError, TimeoutError):
                break  # it may have it: NCS sends it again
            return web.Response(status=status, body=answer, content_type="application/json")
        reason = "no worker process took the notice; retry"
        return self.reply(503, UNKNOWN_EVENT_TYPE, "unavailable", reason)

    async def close(self) -> None:
        """Nothing runs after an answer: each forward ends with its request."""
