"""The worker's one HTTP server: /metrics, /livez, /readyz, /webhooks/agora."""

from __future__ import annotations

from types import TracebackType

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.metrics import Metrics
from worker.observability.health import Health, HealthReport
from worker.observability.webhooks import WebhookReceiver


def build_ops_app(metrics: Metrics, health: Health, webhooks: WebhookReceiver) -> web.Application:
    """Routes of the ops server."""

    async def scrape(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def livez(_: web.Request) -> web.Response:
        return _probe(health.liveness())

    async def readyz(_: web.Request) -> web.Response:
        return _probe(health.readiness())

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_post("/webhooks/agora", webhooks.handle)
    return app


def _probe(report: HealthReport) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(report),
        status=200 if report.ok else 503,
        content_type="application/json",
    )


class OpsServer:
    """Serves an app on host:port for the lifetime of an `async with` block."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._runner = web.AppRunner(app, access_log=None)
        self._host = host
        self._port = port

    async def __aenter__(self) -> OpsServer:
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._runner.cleanup()
