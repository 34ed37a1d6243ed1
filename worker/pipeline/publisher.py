"""Publishing to the output topics, with acknowledgement futures instead of waits.

`producer.send` appends to a batch and returns a future that resolves when the broker has
acknowledged the record (acks=all, idempotent producer). Handing those futures back lets
hundreds of commands pipeline their results into a few produce requests while each command
still knows precisely when its own result is durable — the moment its offset may be committed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from contracts import AgentStateEvent, ResultEvent, encode_event
from contracts.headers import (
    AGENT_STATE_EVENT_TYPE,
    COMMAND_RESULT_EVENT_TYPE,
    STAGE_DECODE,
    STAGE_EXECUTE,
    cloudevent_headers,
    dlq_headers,
)
from worker.metrics import Metrics
from worker.settings import Settings

Headers = Sequence[tuple[str, bytes]]
Ack = asyncio.Future[object]


def make_producer(settings: Settings) -> AIOKafkaProducer:
    """The worker's only producer: idempotent, acks from all in-sync replicas, small linger."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,  # batch results of concurrently finishing commands
        max_batch_size=262_144,
        compression_type=None,
        client_id=f"{settings.group_id}-producer",
    )


class EventPublisher:
    """Sends result, agent-state and dead-letter records; every send returns its ack future."""

    def __init__(self, producer: AIOKafkaProducer, settings: Settings, metrics: Metrics) -> None:
        self._producer = producer
        self._settings = settings
        self._metrics = metrics
        self._source = f"convoai-worker/{settings.group_id}"

    async def result(self, event: ResultEvent, key: bytes | None) -> Ack:
        """Queue a result event keyed like its command."""
        headers = cloudevent_headers(
            id=event.command_id,
            source=self._source,
            type=COMMAND_RESULT_EVENT_TYPE,
            time=event.completed_at,
            subject=event.command or None,
        )
        return await self._send(self._settings.topic_results, key, encode_event(event), headers)

    async def state(self, event: AgentStateEvent) -> Ack:
        """Queue an agent-state event keyed by agent id (the compaction key)."""
        headers = cloudevent_headers(
            id=uuid.uuid4().hex,
            source=self._source,
            type=AGENT_STATE_EVENT_TYPE,
            time=event.observed_at,
            subject=event.agent_id,
        )
        return await self._send(
            self._settings.topic_state, event.agent_id.encode(), encode_event(event), headers
        )

    async def dead_letter(
        self,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        reason: str,
        error: BaseException,
    ) -> Ack:
        """Queue the original record on the DLQ with Kafka Connect error headers.

        `reason` is `decode_error`, `invalid_command` (the record never became a command) or
        `retries_exhausted` (the API kept failing); it selects the Connect stage header.
        """
        context = dlq_headers(
            topic=topic,
            partition=partition,
            offset=offset,
            stage=STAGE_EXECUTE if reason == "retries_exhausted" else STAGE_DECODE,
            error=error,
            class_name=f"worker.pipeline.{reason}",
            connector_name=self._settings.group_id,
        )
        return await self._send(
            self._settings.topic_dlq, key, value, [*headers, *context], dlq_reason=reason
        )

    async def _send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        *,
        dlq_reason: str | None = None,
    ) -> Ack:
        ack: Ack = await self._producer.send(topic, value=value, key=key, headers=list(headers))
        ack.add_done_callback(lambda f: self._count(f, topic, dlq_reason))
        return ack

    def _count(self, ack: Ack, topic: str, dlq_reason: str | None) -> None:
        if ack.cancelled() or ack.exception() is not None:
            return
        self._metrics.published(topic).inc()
        if dlq_reason is not None:
            self._metrics.dead_lettered(dlq_reason).inc()
