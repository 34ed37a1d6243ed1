"""What happens to one command record: decode, dedupe, execute, publish, finish.

A record is *finished* only when everything it produces — agent-state events, its result, a
dead-letter copy — has been acknowledged by Kafka; only then may its offset be committed. Command
problems (bad input, API errors, expired deadlines) become result events and never raise.
Anything that does raise here (Kafka unreachable for the producer's whole delivery timeout) is
fatal: the record stays unfinished, so it is redelivered after the worker restarts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple, Protocol

import structlog

from contracts import CommandDecodeError, DecodedCommand, ErrorInfo, ResultEvent, decode_command
from worker.execution import Execution
from worker.metrics import Metrics
from worker.pipeline.dedupe import CompletedCommands
from worker.pipeline.publisher import Ack, EventPublisher

log = structlog.get_logger(__name__)

# Malformed bytes are a producer bug of a different kind than a well-formed but invalid command.
DECODE_KINDS = frozenset({"malformed_json", "not_an_object"})


class RetriesExhaustedError(Exception):
    """The API kept failing until the command's attempts or deadline ran out (DLQ header)."""


class Job(NamedTuple):
    """A consumed command record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]
    timestamp: float  # record timestamp, seconds since the epoch


class CommandExecutor(Protocol):
    """The part of `worker.execution.Executor` the pipeline uses."""

    async def execute(self, decoded: DecodedCommand, *, received_at: datetime) -> Execution: ...


class CommandProcessor:
    """Turns a consumed record into acknowledged output (the caller then marks it finished)."""

    def __init__(
        self,
        executor: CommandExecutor,
        publisher: EventPublisher,
        completed: CompletedCommands,
        metrics: Metrics,
    ) -> None:
        self._executor = executor
        self._publisher = publisher
        self._completed = completed
        self._metrics = metrics

    async def __call__(self, job: Job) -> None:
        """Process `job` to the end; raises only when output cannot be published."""
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(partition=job.partition, offset=job.offset)
        try:
            decoded = decode_command(job.value or b"")
        except CommandDecodeError as error:
            await self._reject(job, error)
        else:
            await self._execute(job, decoded)

    async def _execute(self, job: Job, decoded: DecodedCommand) -> None:
        command = decoded.command
        tag = command.tag()
        structlog.contextvars.bind_contextvars(command_id=command.id, command=tag)
        self._metrics.received(tag).inc()
        if command.id in self._completed:
            self._metrics.deduplicated(tag).inc()
            log.info("command_deduplicated")
            return
        execution = await self._executor.execute(
            decoded, received_at=datetime.fromtimestamp(job.timestamp, UTC)
        )
        result = execution.result
        acks: list[Ack] = [await self._publisher.state(e) for e in execution.state_events]
        acks.append(await self._publisher.result(result, job.key))
        if result.error is not None and result.error.code == "retries_exhausted":
            exhausted = RetriesExhaustedError(f"{tag}: {result.error.message}")
            acks.append(await self._dead_letter(job, "retries_exhausted", exhausted))
        await asyncio.gather(*acks)
        self._completed.add(command.id)
        self._count(tag, result, job)

    async def _reject(self, job: Job, error: CommandDecodeError) -> None:
        # Only known command names become label values: producers' typos must not create series.
        tag = error.command if error.kind == "invalid_field" and error.command else "invalid"
        self._metrics.received("invalid").inc()
        if error.command_id is not None and error.command_id in self._completed:
            self._metrics.deduplicated(tag).inc()
            return  # redelivered: its rejection and dead letter are already on Kafka
        reason = "decode_error" if error.kind in DECODE_KINDS else "invalid_command"
        log.warning("command_rejected", reason=reason, error=str(error))
        acks = [await self._dead_letter(job, reason, error)]
        if error.command_id is not None:
            now = datetime.now(UTC)
            rejected = ResultEvent(
                command_id=error.command_id,
                command=error.command,
                outcome="rejected",
                error=ErrorInfo(code=reason, message=str(error)),
                attempts=0,
                received_at=datetime.fromtimestamp(job.timestamp, UTC),
                completed_at=now,
                duration_ms=0.0,
            )
            acks.append(await self._publisher.result(rejected, job.key))
        await asyncio.gather(*acks)
        if error.command_id is not None:
            self._completed.add(error.command_id)
            self._count(tag, rejected, job)

    async def _dead_letter(self, job: Job, reason: str, error: BaseException) -> Ack:
        return await self._publisher.dead_letter(
            topic=job.topic,
            partition=job.partition,
            offset=job.offset,
            key=job.key,
            value=job.value,
            headers=job.headers,
            reason=reason,
            error=error,
        )

    def _count(self, tag: str, result: ResultEvent, job: Job) -> None:
        metrics = self._metrics
        metrics.completed(tag, result.outcome).inc()
        metrics.e2e(tag).observe(max(0.0, time.time() - job.timestamp))
        if result.outcome == "expired":
            metrics.expired(tag).inc()
        if result.outcome == "succeeded":
            log.debug("command_processed", outcome=result.outcome, attempts=result.attempts)
        else:
            log.info(
                "command_processed",
                outcome=result.outcome,
                attempts=result.attempts,
                error=result.error.code if result.error else None,
            )
