"""The worker's one HTTP server: /metrics, /livez, /readyz and the NCS webhooks on one port.

The port is reachable from the cluster (Prometheus, the kubelet, the ingress controller), so
the server is set up for clients that misbehave: a request head must arrive complete within
the header timeout of the connection opening (or of its previous response: the same limit
closes idle keep-alive connections), and is bounded in lines and fields; a webhook body the
receiver refused early is not drained (no lingering), the connection is closed instead; a
handler whose client went away is cancelled. Webhook bodies are bounded by the receiver
(`worker.agents.webhooks`), and the probes answer without exception texts (`Health`).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, NamedTuple

import msgspec
from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from worker.agents.webhook_gate import WebhookGate
from worker.metrics import Metrics
from worker.observability.health import Health, HealthReport

SHUTDOWN_TIMEOUT_SECONDS = 2.0  # probes, scrapes and webhooks all answer well within this
# A request head of Prometheus, the kubelet, NCS or an ingress controller fits in a fraction of
# these; they bound what a connection can make the parser hold (aiohttp's own defaults: 8190
# bytes a line or field, 128 fields).
MAX_LINE_BYTES = 8190
MAX_FIELD_BYTES = 8190
MAX_HEADERS = 48


class ClientLimits(NamedTuple):
    """What the server allows clients it does not control (the worker's ops port)."""

    header_timeout_seconds: float  # CONVOAI_HTTP_HEADER_TIMEOUT_SECONDS

    def runner_options(self) -> dict[str, Any]:
        """The `AppRunner` options (passed on to each connection's `RequestHandler`)."""
        return {
            # aiohttp's keep-alive timer runs from the connection's start (and from each
            # response) until a complete request head: it is the header timeout too
            "keepalive_timeout": self.header_timeout_seconds,
            "lingering_time": 0,  # a refused body is not drained: the connection is closed
            "handler_cancellation": True,  # a client that went away holds no handler
            "max_line_size": MAX_LINE_BYTES,
            "max_field_size": MAX_FIELD_BYTES,
            "max_headers": MAX_HEADERS,
        }


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_ops_app(metrics: Metrics, health: Health, webhooks: WebhookGate) -> web.Application:
    """The routes of a worker's ops server; pending webhook publishes are cancelled at cleanup."""
    return ops_app(
        make_aiohttp_handler(metrics.registry),
        _probe(health.liveness),
        _probe(health.readiness),
        webhooks,
    )


def ops_app(
    metrics: Handler, liveness: Handler, readiness: Handler, webhooks: WebhookGate
) -> web.Application:
    """The ops port's routes with these handlers (a worker's, or those of the parent of several
    worker processes, `worker.processes.ops`)."""
    app = web.Application(client_max_size=webhooks.max_body_bytes)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/livez", liveness)
    app.router.add_get("/readyz", readiness)
    app.router.add_post("/webhooks/agora", webhooks.handle)  # a worker of one App ID
    app.router.add_post("/webhooks/agora/{app_id}", webhooks.handle)

    async def close_webhooks(_: web.Application) -> None:
        await webhooks.close()

    app.on_cleanup.append(close_webhooks)
    return app


def report_response(report: HealthReport) -> web.Response:
    """A probe's answer: 200 or 503 with the report as JSON."""
    return web.Response(
        body=msgspec.json.encode(report),
        status=200 if report.ok else 503,
        content_type="application/json",
    )


def _probe(report: Callable[[], HealthReport]) -> Handler:
    """A handler answering with `report()`."""

    async def handler(_: web.Request) -> web.Response:
        return report_response(report())

    return handler


class ListenError(OSError):
    """The server cannot listen on its address (the port is in use, or not ours to take)."""


class OpsServer:
    """Serves an app on host:port for the lifetime of an `async with` block (no access log).

    `limits` are for clients the server does not control; without them aiohttp's defaults
    apply (the emulator, a local tool whose API clients keep connections alive between
    requests and whose delayed answers must run to their end). With `path`, the app is served
    on that Unix socket instead (a worker process of a pod's several, `worker.processes`).
    """

    def __init__(
        self,
        app: web.Application,
        host: str,
        port: int,
        *,
        limits: ClientLimits | None = None,
        path: str | None = None,
    ) -> None:
        self._runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
            **(limits.runner_options() if limits else {}),
        )
        self._host = host
        self._port = port
        self._path = path

    @property
    def port(self) -> int:
        """The port actually bound (the OS picks one when asked for port 0)."""
        address = self._runner.addresses[0]
        return int(address[1])

    async def __aenter__(self) -> OpsServer:
        await self._runner.setup()
        site: web.BaseSite
        if self._path is None:
            site, address = (
                web.TCPSite(self._runner, self._host, self._port),
                f"{self._host}:{self._port}",
            )
        else:
            site, address = web.UnixSite(self._runner, self._path), self._path
        try:
            await site.start()
        except OSError as error:
            await self._runner.cleanup()
            reason = (os.strerror(error.errno) if error.errno else str(error)).lower()
            raise ListenError(error.errno, f"cannot listen on {address}: {reason}") from error
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._runner.cleanup()
