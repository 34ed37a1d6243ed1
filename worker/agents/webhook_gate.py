"""What is decided about an Agora NCS callback before its notice is read.

A `WebhookGate` answers these itself, in this order:

- 503 `busy` when `max_concurrent` callbacks are being handled already (before any byte of the
  body is read: a flood holds at most that many bodies of at most `max_body_bytes`).
- 404 `unknown_endpoint` for an App ID this worker does not serve, or for `/webhooks/agora` on a
  worker of several App IDs.
- 503 `disabled` when the App ID has no NCS secret configured: nothing can be verified.
- 401 `bad_signature` when `Agora-Signature-V2` is missing or wrong, 413 `too_large` when the
  body exceeds `max_body_bytes`, 408 `slow_client` when it does not arrive within
  `READ_SECONDS` (`worker.agents.signed_body`: what it can, it refuses from the request head
  before reading the body; the signature is checked on the raw bytes before any parsing).

and hands the verified raw body to `accept`: the worker's `WebhookReceiver` decodes, dedupes and
publishes it (`worker.agents.webhooks`); the parent of several worker processes forwards it to
one of them (`worker.processes.ops`), so a pod's one port refuses exactly what a worker does.
"""

from __future__ import annotations

import abc
import asyncio
from typing import Protocol

import msgspec
from aiohttp import web

from worker.agents.signed_body import BodyRefusedError, read_signed
from worker.metrics import Metrics

UNKNOWN_EVENT_TYPE = "unknown"  # metric label for unreadable or undocumented event types
READ_SECONDS = 5.0  # NCS sends a few kilobytes at once; anything slower is not NCS


class NoticeSecrets(Protocol):
    """The App IDs that take webhooks and each one's NCS secret (`worker.api.tenants.Tenants`)."""

    @property
    def single(self) -> str | None:
        """The App ID of `/webhooks/agora`: the only one served, None when there are several."""
        ...

    def serves(self, app_id: str) -> bool:
        """Whether `app_id` is served."""
        ...

    def webhook_secret(self, app_id: str) -> str:
        """The NCS secret of `app_id`; empty when it has none."""
        ...


class Answer(Exception):  # noqa: N818 - an answer, not an error
    """Ends the handling of a callback early with this answer."""

    def __init__(self, status: int, verdict: str, reason: str | None = None) -> None:
        super().__init__(reason or verdict)
        self.status = status
        self.verdict = verdict
        self.reason = reason


class _Reply(msgspec.Struct, frozen=True, omit_defaults=True):
    ok: bool
    verdict: str
    reason: str | None = None


class WebhookGate(abc.ABC):
    """The aiohttp handler of NCS callbacks (`handle`) up to a verified body (`accept`)."""

    def __init__(
        self,
        secrets: NoticeSecrets,
        metrics: Metrics,
        *,
        max_body_bytes: int,
        max_concurrent: int,
        read_seconds: float = READ_SECONDS,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self._secrets = secrets
        self._metrics = metrics
        self._max_concurrent = max_concurrent
        self._read_seconds = read_seconds
        self._receiving = 0
        metrics.webhooks_in_flight_limit.set(max_concurrent)

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one callback, unless `max_concurrent` are being handled already (503)."""
        if self._receiving >= self._max_concurrent:
            reason = f"more than {self._max_concurrent} callbacks at once; retry"
            return self.reply(503, UNKNOWN_EVENT_TYPE, "busy", reason)
        self._receiving += 1
        self._metrics.webhooks_in_flight.set(self._receiving)
        try:
            started = asyncio.get_running_loop().time()
            try:
                app_id = self._endpoint(request)
                body = await self._signed_body(request, app_id)
            except (Answer, BodyRefusedError) as answer:
                return self.reply(answer.status, UNKNOWN_EVENT_TYPE, answer.verdict, answer.reason)
            return await self.accept(request, app_id, body, started)
        finally:
            self._receiving -= 1
            self._metrics.webhooks_in_flight.set(self._receiving)

    @abc.abstractmethod
    async def accept(
        self, request: web.Request, app_id: str, body: bytes, started: float
    ) -> web.Response:
        """Answer a callback to `app_id`'s endpoint whose `body` is verified (`started`: the
        event loop's time when its handling began)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop what answering callbacks left running (when the ops server closes)."""

    def _endpoint(self, request: web.Request) -> str:
        """The App ID whose endpoint was called."""
        app_id = request.match_info.get("app_id")
        if app_id is None:
            single = self._secrets.single
            if single is None:
                reason = "this worker serves several App IDs: call /webhooks/agora/{app_id}"
                raise Answer(404, "unknown_endpoint", reason)
            return single
        if not self._secrets.serves(app_id):
            raise Answer(404, "unknown_endpoint", "no such App ID is served here")
        return app_id

    async def _signed_body(self, request: web.Request, app_id: str) -> bytes:
        """The callback's raw body, once its signature is verified with `app_id`'s secret."""
        secret = self._secrets.webhook_secret(app_id).encode()
        if not secret:
            reason = (
                f"webhooks of App ID {app_id!r} are disabled: no NCS secret configured "
                "(CONVOAI_WEBHOOK_SECRET, or its webhook_secret in CONVOAI_API_CREDENTIALS_FILE)"
            )
            raise Answer(503, "disabled", reason)
        return await read_signed(
            request, secret, limit=self.max_body_bytes, read_seconds=self._read_seconds
        )

    def reply(
        self, status: int, event_type: str, verdict: str, reason: str | None = None
    ) -> web.Response:
        """Count the request, then answer it with a small JSON body."""
        self._metrics.webhook_events.labels(event_type, verdict).inc()
        return web.Response(
            body=msgspec.json.encode(_Reply(ok=status == 200, verdict=verdict, reason=reason)),
            status=status,
            content_type="application/json",
        )
