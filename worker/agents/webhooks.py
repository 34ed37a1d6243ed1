"""`POST /webhooks/agora/{app_id}`: verified, deduplicated Agora NCS callbacks → agent-state events.

Each App ID served has its own endpoint, checked with its own NCS secret (`worker.api.tenants`):
the NCS envelope names no App ID, so the endpoint is what says whose notice it is, and a tenant
that knows its own secret cannot sign notices about another. `/webhooks/agora` is the endpoint
of a worker that serves exactly one App ID.

Answers, in order of the checks:

- 503 `busy` when `max_concurrent` callbacks are being handled already (before any byte of the
  body is read: a flood holds at most that many bodies of at most `max_body_bytes`).
- 404 `unknown_endpoint` for an App ID this worker does not serve, or for `/webhooks/agora` on a
  worker of several App IDs.
- 503 `disabled` when the App ID has no NCS secret configured: nothing can be verified.
- 401 `bad_signature` when `Agora-Signature-V2` is missing or wrong, 413 `too_large` when the
  body exceeds `max_body_bytes`, 408 `slow_client` when it does not arrive within
  `READ_SECONDS` (`worker.agents.signed_body`: what it can, it refuses from the request head
  before reading the body; the signature is checked on the raw bytes before any parsing).
- 400 `malformed` when the body is not an NCS envelope, or a state-changing event lacks its
  `agent_id`.
- 200 `stale` for a notice sent (`notifyMs`) more than `MAX_NOTICE_AGE_SECONDS` ago or dated in
  the future beyond `MAX_CLOCK_SKEW_SECONDS`: a captured request replayed later changes nothing
  (and one replayed sooner is a duplicate, or older than what the worker knows).
- 200 `unknown_type` for other products and undocumented event types, so Agora does not retry
  them; 200 `accepted` for documented events that change no state (see `ncs`).
- 200 `duplicate` for a `noticeId` this App ID's endpoint already published (notice ids are
  remembered per App ID: one tenant's ids cannot shadow another's notices).
- 403 `app_mismatch` for a state change about an agent another App ID holds: a notice never
  moves an agent to another App ID, nor touches another tenant's agent.
- 200 `superseded` for a state the worker already knows, or one older than it knows (a
  "joined" notice redelivered after the agent stopped, say): nothing is published.
- For a state change: 200 `accepted` once Kafka acknowledged the event; 503 `publish_timeout`
  when it did not within the ack budget, or `publish_failed` when publishing failed.

NCS resends when it gets no 200, so the response never waits for Kafka beyond the budget
(default 150 ms, under Agora's 200 ms expectation). The publish keeps running after a 503; a
redelivery that arrives meanwhile waits on the same publish instead of starting another, and
one that arrives after it succeeded finds the notice remembered and gets 200 `duplicate`. A
notice is remembered only once its event is on Kafka, so Agora never gets a 200 for an event
that was not published.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import msgspec
import structlog
from aiohttp import web

from contracts import AgentStateEvent
from worker.agents.ncs import Notice, decode_notice, state_event
from worker.agents.signed_body import BodyRefusedError, read_signed
from worker.metrics import Metrics

log = structlog.get_logger(__name__)

ACK_BUDGET_SECONDS = 0.15  # Agora expects an answer within 200 ms; keep 50 ms for the rest
REMEMBERED_NOTICES = 10_000  # NCS retries within seconds, so recent notices are enough
UNKNOWN_EVENT_TYPE = "unknown"  # metric label for unreadable or undocumented event types
READ_SECONDS = 5.0  # NCS sends a few kilobytes at once; anything slower is not NCS
MAX_NOTICE_AGE_SECONDS = 600.0  # NCS gives up retrying within minutes
MAX_CLOCK_SKEW_SECONDS = 60.0

NoticeKey = tuple[str, str]
"""(App ID of the endpoint, noticeId): what a notice is remembered by."""


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


class AgentOwners(Protocol):
    """Which App IDs hold an agent id (`worker.agents.directory.AgentDirectory`)."""

    def apps_of(self, agent_id: str) -> frozenset[str]:
        """The App IDs `agent_id` is known under."""
        ...


class StateSink(Protocol):
    """Publishes an observed agent state unless the worker knows it or something newer.

    Returns True once Kafka acknowledged the event, False when there was nothing to publish;
    raises when publishing failed.
    """

    async def publish_state(self, event: AgentStateEvent) -> bool: ...


class _Answer(Exception):  # noqa: N818 - an answer, not an error
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


class WebhookReceiver:
    """The aiohttp handler of Agora NCS callbacks (`handle`) and the notices it remembers."""

    def __init__(
        self,
        secrets: NoticeSecrets,
        owners: AgentOwners,
        sink: StateSink,
        metrics: Metrics,
        *,
        max_body_bytes: int,
        max_concurrent: int,
        ack_budget_seconds: float = ACK_BUDGET_SECONDS,
        remember: int = REMEMBERED_NOTICES,
        read_seconds: float = READ_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._read_seconds = read_seconds
        self.max_body_bytes = max_body_bytes
        self._max_concurrent = max_concurrent
        self._receiving = 0
        metrics.webhooks_in_flight_limit.set(max_concurrent)
        self._clock = clock
        self._secrets = secrets
        self._owners = owners
        self._sink = sink
        self._metrics = metrics
        self._budget = ack_budget_seconds
        self._remember = remember
        self._published: OrderedDict[NoticeKey, None] = OrderedDict()  # LRU of notices
        self._publishing: dict[NoticeKey, asyncio.Task[bool]] = {}

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one callback, unless `max_concurrent` are being handled already (503)."""
        if self._receiving >= self._max_concurrent:
            reason = f"more than {self._max_concurrent} callbacks at once; retry"
            return self._reply(503, UNKNOWN_EVENT_TYPE, "busy", reason)
        self._receiving += 1
        self._metrics.webhooks_in_flight.set(self._receiving)
        try:
            return await self._handle(request)
        finally:
            self._receiving -= 1
            self._metrics.webhooks_in_flight.set(self._receiving)

    async def _handle(self, request: web.Request) -> web.Response:
        """Verify, decode, dedupe and publish one callback to its App ID's endpoint."""
        deadline = asyncio.get_running_loop().time() + self._budget
        event_type = UNKNOWN_EVENT_TYPE
        try:
            app_id = self._endpoint(request)
            notice = await self._notice(request, app_id)
            event_type = str(notice.event_type) if notice.documented else UNKNOWN_EVENT_TYPE
            self._check_age(notice)
            event = self._state_change(app_id, notice)
        except (_Answer, BodyRefusedError) as answer:
            if answer.verdict == "malformed":
                log.warning("webhook_malformed", event_type=event_type, reason=answer.reason)
            return self._reply(answer.status, event_type, answer.verdict, answer.reason)
        if event is None:
            verdict = "accepted" if notice.documented else "unknown_type"
            return self._reply(200, event_type, verdict)
        return await self._publish((app_id, notice.notice_id), notice, event, deadline)

    async def close(self) -> None:
        """Cancel publishes still running (their notices were not acknowledged to Agora)."""
        tasks = list(self._publishing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _endpoint(self, request: web.Request) -> str:
        """The App ID whose endpoint was called."""
        app_id = request.match_info.get("app_id")
        if app_id is None:
            single = self._secrets.single
            if single is None:
                reason = "this worker serves several App IDs: call /webhooks/agora/{app_id}"
                raise _Answer(404, "unknown_endpoint", reason)
            return single
        if not self._secrets.serves(app_id):
            raise _Answer(404, "unknown_endpoint", "no such App ID is served here")
        return app_id

    async def _notice(self, request: web.Request, app_id: str) -> Notice:
        """The callback's envelope, once its signature is verified with `app_id`'s secret."""
        secret = self._secrets.webhook_secret(app_id).encode()
        if not secret:
            reason = (
                f"webhooks of App ID {app_id!r} are disabled: no NCS secret configured "
                "(CONVOAI_WEBHOOK_SECRET, or its webhook_secret in CONVOAI_API_CREDENTIALS_FILE)"
            )
            raise _Answer(503, "disabled", reason)
        body = await read_signed(
            request, secret, limit=self.max_body_bytes, read_seconds=self._read_seconds
        )
        try:
            return decode_notice(body)
        except msgspec.DecodeError as error:
            raise _Answer(400, "malformed", f"not an NCS notification: {error}") from None

    def _check_age(self, notice: Notice) -> None:
        """Refuse (with 200: nothing to retry) a notice too old or dated in the future."""
        if not notice.notify_ms:
            return  # no date to judge by; dedupe and the lifecycle's ordering still apply
        age = self._clock() - notice.notify_ms / 1000
        if age > MAX_NOTICE_AGE_SECONDS or age < -MAX_CLOCK_SKEW_SECONDS:
            raise _Answer(200, "stale", f"sent {age:.0f} s ago; only recent notices are applied")

    def _state_change(self, app_id: str, notice: Notice) -> AgentStateEvent | None:
        """The state event to publish for a notice not published before, if any."""
        key = (app_id, notice.notice_id)
        if key in self._published:
            self._published.move_to_end(key)
            raise _Answer(200, "duplicate")
        try:
            event = state_event(notice, app_id)
        except msgspec.DecodeError as error:
            reason = f"payload of event {notice.event_type}: {error}"
            raise _Answer(400, "malformed", reason) from None
        if event is not None and (others := self._owners.apps_of(event.agent_id) - {app_id}):
            log.warning(
                "webhook_app_mismatch",
                app_id=app_id,
                agent_id=event.agent_id,
                held_by=sorted(others),
                notice_id=notice.notice_id,
            )
            reason = f"agent {event.agent_id} is not an agent of App ID {app_id!r}"
            raise _Answer(403, "app_mismatch", reason)
        return event

    async def _publish(
        self, key: NoticeKey, notice: Notice, event: AgentStateEvent, deadline: float
    ) -> web.Response:
        event_type = str(notice.event_type)
        task = self._publishing.get(key)
        if task is None:  # else a redelivery: wait on the publish already running
            task = asyncio.create_task(self._sink.publish_state(event))
            self._publishing[key] = task
            task.add_done_callback(functools.partial(self._settled, key, notice, event))
        timeout = max(0.0, deadline - asyncio.get_running_loop().time())
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            reason = "state event not yet acknowledged by Kafka; retry"
            return self._reply(503, event_type, "publish_timeout", reason)
        if task.cancelled() or task.exception() is not None:
            return self._reply(503, event_type, "publish_failed", "state event not published")
        return self._reply(200, event_type, "accepted" if task.result() else "superseded")

    def _settled(
        self, key: NoticeKey, notice: Notice, event: AgentStateEvent, task: asyncio.Task[bool]
    ) -> None:
        """Remember a published notice; log a failed publish (a redelivery will retry it)."""
        del self._publishing[key]
        if task.cancelled():
            return
        error = task.exception()
        context = {
            "app_id": key[0],
            "notice_id": notice.notice_id,
            "event_type": notice.event_type,
            "agent_id": event.agent_id,
            "status": event.status,
        }
        if error is not None:
            log.warning("webhook_publish_failed", error=repr(error), **context)
            return
        self._published[key] = None
        if len(self._published) > self._remember:
            self._published.popitem(last=False)
        log.info("webhook_state_published" if task.result() else "webhook_state_known", **context)

    def _reply(
        self, status: int, event_type: str, verdict: str, reason: str | None = None
    ) -> web.Response:
        """Count the request, then answer it with a small JSON body."""
        self._metrics.webhook_events.labels(event_type, verdict).inc()
        return web.Response(
            body=msgspec.json.encode(_Reply(ok=status == 200, verdict=verdict, reason=reason)),
            status=status,
            content_type="application/json",
        )
