"""NCS callbacks of the emulated service: agent joined (101), left (102) and error (110).

Each callback is a JSON envelope (`noticeId`, `productId` 17, `eventType`, `notifyMs`, `sid`,
`payload`) signed like Agora's Notification Center: `Agora-Signature-V2` is the lowercase hex
HMAC-SHA256 of the raw body with the webhook secret, `Agora-Signature` the HMAC-SHA1
(`docs/api-reference.md` §6). Events go through a bounded queue drained by background tasks, so an
API response never waits for a delivery; like NCS, a delivery that is not answered 200 is retried
three times with `notifyMs` refreshed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from typing import Any

import aiohttp
import msgspec
import structlog

from worker.emulator.state import Agent

log = structlog.get_logger(__name__)

PRODUCT_ID = 17
AGENT_JOINED = 101
AGENT_LEFT = 102
AGENT_ERROR = 110
RETRY_DELAYS = (0.2, 1.0, 3.0)  # NCS: resend at once, then at growing intervals, 3 retries
QUEUE_SIZE = 10_000
SENDERS = 4


def sign(body: bytes, secret: str) -> dict[str, str]:
    """The signature headers of an NCS callback body."""
    key = secret.encode()
    return {
        "Agora-Signature": hmac.new(key, body, hashlib.sha1).hexdigest(),
        "Agora-Signature-V2": hmac.new(key, body, hashlib.sha256).hexdigest(),
    }


class Notice(msgspec.Struct):
    """One callback: the envelope fields except `notifyMs`, which is set per delivery."""

    notice_id: str
    event_type: int
    sid: str
    payload: dict[str, Any]

    def encode(self) -> bytes:
        """The body as sent now."""
        return msgspec.json.encode(
            {
                "noticeId": self.notice_id,
                "productId": PRODUCT_ID,
                "eventType": self.event_type,
                "notifyMs": int(time.time() * 1000),
                "sid": self.sid,
                "payload": self.payload,
            }
        )


class WebhookSender:
    """Implements the state's `Notifier` by POSTing signed callbacks to one URL."""

    def __init__(self, url: str, secret: str) -> None:
        self._url = url
        self._secret = secret
        self._queue: asyncio.Queue[Notice] = asyncio.Queue(QUEUE_SIZE)
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.delivered = 0
        self.dropped = 0

    async def start(self) -> None:
        """Open the HTTP session and start the delivery tasks."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._tasks = [asyncio.create_task(self._deliver_forever()) for _ in range(SENDERS)]

    async def close(self) -> None:
        """Stop delivering; undelivered callbacks are discarded."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    # Notifier -----------------------------------------------------------------

    def joined(self, agent: Agent, at: float) -> None:
        """101 once the agent is in the channel."""
        payload = {
            "agent_id": agent.agent_id,
            "name": agent.name,
            "start_ts": int(agent.created),
            "channel": agent.channel,
            "labels": agent.labels,
        }
        self._emit_at(at, AGENT_JOINED, agent, payload)

    def left(self, agent: Agent, at: float) -> None:
        """102 with the final status and the leave reason."""
        payload = {
            "agent_id": agent.agent_id,
            "name": agent.name,
            "start_ts": int(agent.created),
            "stop_ts": int(at),
            "channel": agent.channel,
            "status": agent.final_status,
            "message": agent.message,
            "labels": agent.labels,
        }
        self._emit_at(at, AGENT_LEFT, agent, payload)

    def failed(self, agent: Agent, errors: list[dict[str, Any]]) -> None:
        """110 for a module error during the session."""
        payload = {
            "agent_id": agent.agent_id,
            "name": agent.name,
            "start_ts": int(agent.created),
            "channel": agent.channel,
            "turn_id": errors[0].get("turn_id", "") if errors else "",
            "errors": errors,
            "labels": agent.labels,
        }
        self._emit_at(time.time(), AGENT_ERROR, agent, payload)

    # delivery -----------------------------------------------------------------

    def _emit_at(self, at: float, event_type: int, agent: Agent, payload: dict[str, Any]) -> None:
        notice = Notice(f"{secrets.token_hex(8)}:{event_type}", event_type, agent.agent_id, payload)
        delay = at - time.time()
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._enqueue, notice)
        else:
            self._enqueue(notice)

    def _enqueue(self, notice: Notice) -> None:
        try:
            self._queue.put_nowait(notice)
        except asyncio.QueueFull:
            self.dropped += 1

    async def _deliver_forever(self) -> None:
        while True:
            notice = await self._queue.get()
            await self._deliver(notice)

    async def _deliver(self, notice: Notice) -> None:
        assert self._session is not None  # noqa: S101 - start() runs before any delivery
        for delay in (0.0, *RETRY_DELAYS):
            if delay:
                await asyncio.sleep(delay)
            body = notice.encode()
            headers = {"Content-Type": "application/json", **sign(body, self._secret)}
            try:
                async with self._session.post(self._url, data=body, headers=headers) as response:
                    if response.status == 200:
                        self.delivered += 1
                        return
                    reason = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = repr(exc)
            log.debug("webhook_delivery_failed", notice_id=notice.notice_id, reason=reason)
        self.dropped += 1
        log.warning("webhook_dropped", notice_id=notice.notice_id, event_type=notice.event_type)
