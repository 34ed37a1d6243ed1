"""`POST /webhooks/agora/{app_id}`: verified, deduplicated Agora NCS callbacks → agent-state events.

Each App ID served has its own endpoint, checked with its own NCS secret (`worker.api.tenants`):
the NCS envelope names no App ID, so the endpoint is what says whose notice it is, and a tenant
that knows its own secret cannot sign notices about another. `/webhooks/agora` is the endpoint
of a worker that serves exactly one App ID.

Answers, in order of the checks: first those of the `WebhookGate` (`worker.agents.webhook_gate`:
503 `busy`, 404 `unknown_endpoint`, 503 `disabled`, 401 `bad_signature`, 413 `too_large`, 408
`slow_client`: everything decided before the notice is read), then:

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
from worker.agents.webhook_gate import (
    READ_SECONDS,
    UNKNOWN_EVENT_TYPE,
    Answer,
    NoticeSecrets,
    WebhookGate,
)
from worker.metrics import Metrics

log = structlog.get_logger(__name__)

ACK_BUDGET_SECONDS = 0.15  # Agora expects an answer within 200 ms; keep 50 ms for the rest
REMEMBERED_NOTICES = 10_000  # NCS retries within seconds, so recent notices are enough
MAX_NOTICE_AGE_SECONDS = 600.0  # NCS gives up retrying within minutes
MAX_CLOCK_SKEW_SECONDS = 60.0

NoticeKey = tuple[str, str]
"""(App ID of the endpoint, noticeId): what a notice is remembered by."""


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


class WebhookReceiver(WebhookGate):
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
        super().__init__(
            secrets,
            metrics,
            max_body_bytes=max_body_bytes,
            max_concurrent=max_concurrent,
            read_seconds=read_seconds,
        )
        self._clock = clock
        self._owners = owners
        self._sink = sink
        self._budget = ack_budget_seconds
        self._remember = remember
        self._published: OrderedDict[NoticeKey, None] = OrderedDict()  # LRU of notices
        self._publishing: dict[NoticeKey, asyncio.Task[bool]] = {}

    async def accept(
        self, request: web.Request, app_id: str, body: bytes, started: float
    ) -> web.Response:
        """Decode, dedupe and publish one verified callback to its App ID's endpoint."""
        del request
        deadline = started + self._budget
        event_type = UNKNOWN_EVENT_TYPE
        try:
            notice = _decode(body)
            event_type = str(notice.event_type) if notice.documented else UNKNOWN_EVENT_TYPE
            self._check_age(notice)
            event = self._state_change(app_id, notice)
        except Answer as answer:
            if answer.verdict == "malformed":
                log.warning("webhook_malformed", event_type=event_type, reason=answer.reason)
            return self.reply(answer.status, event_type, answer.verdict, answer.reason)
        if event is None:
            verdict = "accepted" if notice.documented else "unknown_type"
            return self.reply(200, event_type, verdict)
        return await self._publish((app_id, notice.notice_id), notice, event, deadline)

    async def close(self) -> None:
        """Cancel publishes still running (their notices were not acknowledged to Agora)."""
        tasks = list(self._publishing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _check_age(self, notice: Notice) -> None:
        """Refuse (with 200: nothing to retry) a notice too old or dated in the future."""
        if not notice.notify_ms:
            return  # no date to judge by; dedupe and the lifecycle's ordering still apply
        age = self._clock() - notice.notify_ms / 1000
        if age > MAX_NOTICE_AGE_SECONDS or age < -MAX_CLOCK_SKEW_SECONDS:
            raise Answer(200, "stale", f"sent {age:.0f} s ago; only recent notices are applied")

    def _state_change(self, app_id: str, notice: Notice) -> AgentStateEvent | None:
        """The state event to publish for a notice not published before, if any."""
        key = (app_id, notice.notice_id)
        if key in self._published:
            self._published.move_to_end(key)
            raise Answer(200, "duplicate")
        try:
            event = state_event(notice, app_id)
        except msgspec.DecodeError as error:
            reason = f"payload of event {notice.event_type}: {error}"
            raise Answer(400, "malformed", reason) from None
        if event is not None and (others := self._owners.apps_of(event.agent_id) - {app_id}):
            log.warning(
                "webhook_app_mismatch",
                app_id=app_id,
                agent_id=event.agent_id,
                held_by=sorted(others),
                notice_id=notice.notice_id,
            )
            reason = f"agent {event.agent_id} is not an agent of App ID {app_id!r}"
            raise Answer(403, "app_mismatch", reason)
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
            return self.reply(503, event_type, "publish_timeout", reason)
        if task.cancelled() or task.exception() is not None:
            return self.reply(503, event_type, "publish_failed", "state event not published")
        return self.reply(200, event_type, "accepted" if task.result() else "superseded")

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


def _decode(body: bytes) -> Notice:
    """The NCS envelope of a verified body."""
    try:
        return decode_notice(body)
    except msgspec.DecodeError as error:
        raise Answer(400, "malformed", f"not an NCS notification: {error}") from None
