"""What happens to one command record: decode, dedupe, execute, publish.

A record is *finished* when everything it produces is acknowledged by Kafka; only then may its
offset be committed. The outputs go in a fixed order: agent-state events and the dead-letter
copy first, the result last. So a result on Kafka proves the rest is there too, and a command
whose result was seen (the dedupe memory) can be skipped without losing any of its outputs.

Nothing about a record's content raises here: invalid input is rejected and dead-lettered, API
problems become the result's outcome, and outputs the broker refuses are replaced by smaller
ones (or the input is dead-lettered). Kafka being unreachable is waited out (see `Publisher`).
When the record's partition is released while it runs (`abandoned`), a request that may have
reached the API and must not be repeated gets the `unknown` outcome and is finished; anything
else raises `AbandonedError` and stays unfinished for the next owner. Once the outputs of what
ran are being published the work is no longer interruptible: they are finished, not dropped.
A killed record (its release ran out of time) propagates the cancellation: nothing more of it
happens, and it stays unfinished.

An exception of any other kind while processing a record is a bug of the worker, and it is
contained to that record, like Kafka Connect's `errors.tolerance=all`: the record gets a
`failed` result with the code `internal_error` and a dead letter naming the exception, it is
counted (`convoai_internal_errors_total`, alerted on), and the key goes on. One bug times one
record must not become a partition that crash-loops every member of the group.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import NamedTuple, Protocol

import structlog

from contracts import (
    AgentStateEvent,
    Command,
    CommandDecodeError,
    DecodedCommand,
    ErrorInfo,
    ResultEvent,
    decode_command,
)
from contracts.headers import parse_replay
from worker.errors import AbandonedError
from worker.execution import Execution
from worker.execution.caller import Progress
from worker.kafka.ports import Record
from worker.metrics import Metrics
from worker.pipeline.dedupe import CompletedCommands, DedupeKey
from worker.pipeline.outputs import OutputRecord, Outputs
from worker.pipeline.publisher import Publisher, Rejected
from worker.tracing import CommandTracer, trace_headers

log = structlog.get_logger(__name__)

# Malformed bytes are a producer bug of a different kind than a well-formed but invalid command.
DECODE_KINDS = frozenset({"malformed_json", "not_an_object"})
EXHAUSTED = "retries_exhausted"
INTERNAL_ERROR = "internal_error"
MAX_INTERNAL_MESSAGE_CHARS = 1024


class RetriesExhaustedError(Exception):
    """The API kept failing until the command's attempts or deadline ran out (DLQ header)."""


class OutputRejectedError(Exception):
    """The broker refused a command's result even cut short (DLQ header)."""


class Done(NamedTuple):
    """A record's final result, acknowledged by Kafka: what the dedupe memory and counters learn."""

    key: DedupeKey
    tag: str
    result: ResultEvent


class Work(Protocol):
    """A record in the pipeline; `abandoned` and `killed` are set when its partition is being
    released (`worker.pipeline.scheduler`); the processor clears `interruptible` once it
    publishes."""

    @property
    def record(self) -> Record: ...

    abandoned: bool
    killed: bool
    interruptible: bool


class CommandExecutor(Protocol):
    """The part of `worker.execution.Executor` the pipeline uses."""

    async def execute(
        self, decoded: DecodedCommand, *, received_at: datetime, progress: Progress | None = None
    ) -> Execution: ...

    def interrupted(
        self, decoded: DecodedCommand, *, received_at: datetime, progress: Progress
    ) -> Execution: ...


class CommandProcessor:
    """Turns a consumed record into acknowledged outputs (the caller then marks it finished)."""

    def __init__(
        self,
        executor: CommandExecutor,
        outputs: Outputs,
        publisher: Publisher,
        completed: CompletedCommands,
        metrics: Metrics,
        *,
        default_app_id: str = "",
        tracer: CommandTracer | None = None,
    ) -> None:
        """`default_app_id` is the App ID of commands that name none (`CONVOAI_APP_ID`);
        `tracer` traces each command (`worker.tracing`; None: off)."""
        self._executor = executor
        self._outputs = outputs
        self._publisher = publisher
        self._completed = completed
        self._metrics = metrics
        self._default_app_id = default_app_id
        self._tracer = tracer

    async def __call__(self, work: Work) -> None:
        """Process `work.record` to the end; raises `AbandonedError` if abandoned half-way."""
        record = work.record
        self._metrics.record_size(record.topic).observe(len(record.value or b""))
        span = self._tracer.start(record) if self._tracer is not None else None
        decoded: DecodedCommand | None = None
        replay = parse_replay(record.headers, self._outputs.dlq_topic)
        done: Done | None = None
        try:
            try:
                decoded = _decode(record.value)
                if span is not None:
                    span.describe(decoded.command.tag(), decoded.command.id)
                if replay.refusal is not None:
                    raise _refused_marker(decoded.command, replay.refusal)
            except CommandDecodeError as error:
                done = await self._reject(work, error, replay.marker)
            else:
                done = await self._execute(work, decoded, replay.marker)
        except asyncio.CancelledError:
            if not work.abandoned or work.killed:
                raise
            _uncancel()
            raise AbandonedError(f"offset {record.offset} left for the next owner") from None
        except AbandonedError:
            raise
        except Exception as error:  # noqa: BLE001 - a bug of ours, contained to this record
            done = await self._contain(work, decoded, error, replay.marker)
        finally:
            if span is not None:
                span.end(done.result.outcome if done is not None else None)
        if done is not None:
            self._completed.add(done.key)
            self._count(done.tag, done.result, record)

    async def _execute(
        self, work: Work, decoded: DecodedCommand, replay: str | None
    ) -> Done | None:
        command = decoded.command
        tag = command.tag()
        record = work.record
        self._metrics.received(tag).inc()
        key = DedupeKey(self._app_of(command.app_id), command.id, None, replay)
        if key in self._completed:
            self._metrics.deduplicated(tag).inc()
            log.info("command_deduplicated", replay=replay, **_where(record, command.id, tag))
            return None
        received_at = record_time(record)
        progress = Progress()
        try:
            execution = await self._executor.execute(
                decoded, received_at=received_at, progress=progress
            )
        except asyncio.CancelledError:
            if not (work.abandoned and progress.in_doubt) or work.killed:
                raise
            _uncancel()
            execution = self._executor.interrupted(
                decoded, received_at=received_at, progress=progress
            )
        work.interruptible = False  # what ran is published, whatever happens to the partition
        result = execution.result
        dead_letter = None
        if result.error is not None and result.error.code == EXHAUSTED:
            dead_letter = RetriesExhaustedError(f"{tag}: {result.error.message}")
        await self._publish(
            record, result, execution.state_events, EXHAUSTED, dead_letter, replay=replay
        )
        return Done(key, tag, result)

    async def _contain(
        self, work: Work, decoded: DecodedCommand | None, error: Exception, replay: str | None
    ) -> Done | None:
        """A bug met this record: a `failed` result and a dead letter naming the exception."""
        work.interruptible = False
        record = work.record
        command = decoded.command if decoded is not None else None
        tag = command.tag() if command is not None else "invalid"
        command_id = command.id if command is not None else None
        self._metrics.internal_error(tag).inc()
        log.error("command_internal_error", exc_info=error, **_where(record, command_id, tag))
        result = None
        if command is not None:
            result = ResultEvent(
                command_id=command.id,
                command=tag,
                outcome="failed",
                error=ErrorInfo(
                    code=INTERNAL_ERROR,
                    message=f"{type(error).__name__}: {error}"[:MAX_INTERNAL_MESSAGE_CHARS],
                ),
                attempts=0,
                received_at=record_time(record),
                completed_at=datetime.now(UTC),
                duration_ms=0.0,
                app_id=command.app_id,
                correlation_id=command.correlation_id,
            )
        await self._publish(record, result, [], INTERNAL_ERROR, error, replay=replay)
        if result is None or command is None:
            return None
        return Done(DedupeKey(self._app_of(command.app_id), command.id, None, replay), tag, result)

    async def _reject(
        self, work: Work, error: CommandDecodeError, replay: str | None
    ) -> Done | None:
        work.interruptible = False  # nothing ran; what is left is publishing the rejection
        record = work.record
        # Only known command names become label values: producers' typos must not create series.
        tag = error.command if error.kind == "invalid_field" and error.command else "invalid"
        self._metrics.received("invalid").inc()
        command_id = error.command_id or None  # an empty id correlates nothing
        reason = "decode_error" if error.kind in DECODE_KINDS else "invalid_command"
        app_id = self._app_of(error.app_id)
        # a rejection is remembered as such: it never makes a valid command of that id look done
        key = None if command_id is None else DedupeKey(app_id, command_id, reason, replay)
        if key is not None and key in self._completed:
            self._metrics.deduplicated(tag).inc()
            return None  # redelivered: its rejection and dead letter are already on Kafka
        where = _where(record, command_id, error.command)
        log.warning("command_rejected", reason=reason, error=str(error), **where)
        rejected = None
        if command_id is not None:
            rejected = ResultEvent(
                command_id=command_id,
                command=error.command,
                outcome="rejected",
                app_id=app_id or None,
                error=ErrorInfo(code=reason, message=str(error)),
                attempts=0,
                received_at=record_time(record),
                completed_at=datetime.now(UTC),
                duration_ms=0.0,
            )
        await self._publish(record, rejected, [], reason, error, replay=replay)
        if rejected is None or key is None:
            return None
        return Done(key, tag, rejected)

    async def _publish(
        self,
        record: Record,
        result: ResultEvent | None,
        events: list[AgentStateEvent],
        reason: str,
        dead_letter: BaseException | None,
        *,
        replay: str | None,
    ) -> None:
        """Deliver state events and the dead letter, then the result (with the record's checked
        replay marker)."""
        trace = trace_headers()  # the command span's context, when tracing
        first: list[OutputRecord] = [self._outputs.state(event) for event in events]
        for output in first:
            output.headers.extend(trace)
        if dead_letter is not None:
            first.append(self._outputs.dead_letter(record, reason, dead_letter))
        for refused in await self._publisher.deliver(first):
            await self._refused(record, refused, reason, dead_letter)
        if dead_letter is not None:
            self._metrics.dead_lettered(reason).inc()
        if result is None:
            return
        output = self._outputs.result(result, record.key, replay)
        output.headers.extend(trace)
        for refused in await self._publisher.deliver([output]):
            await self._result_refused(record, result, refused, replay)

    async def _refused(
        self, record: Record, refused: Rejected, reason: str, error: BaseException | None
    ) -> None:
        """A state event or dead letter the broker refused: cut the dead letter to its headers."""
        log.error(
            "output_refused",
            topic=refused.record.topic,
            error=repr(refused.error),
            **_where(record),
        )
        if error is None or refused.record.topic != self._outputs.dlq_topic:
            return  # a state event the broker will never take; the result still says what ran
        smaller = self._outputs.dead_letter(record, reason, error, keep_value=False)
        for again in await self._publisher.deliver([smaller]):
            log.error("dead_letter_lost", error=repr(again.error), **_where(record))

    async def _result_refused(
        self, record: Record, result: ResultEvent, refused: Rejected, replay: str | None
    ) -> None:
        """A result the broker refused: send it cut short, or dead-letter the command."""
        where = _where(record, result.command_id, result.command)
        log.error("result_refused", error=repr(refused.error), **where)
        smaller = self._outputs.shrunk_result(result, record.key, replay)
        for again in await self._publisher.deliver([smaller]):
            error = OutputRejectedError(f"result refused by the broker: {again.error}")
            letters = [self._outputs.dead_letter(record, "output_rejected", error)]
            for lost in await self._publisher.deliver(letters):
                await self._refused(record, lost, "output_rejected", error)
            self._metrics.dead_lettered("output_rejected").inc()

    def _app_of(self, app_id: str | None) -> str:
        """The App ID a command runs under: its own, else the worker's default."""
        return app_id or self._default_app_id

    def _count(self, tag: str, result: ResultEvent, record: Record) -> None:
        metrics = self._metrics
        metrics.completed(tag, result.outcome).inc()
        metrics.e2e(tag).observe(max(0.0, time.time() - record.timestamp / 1000))
        if result.outcome == "expired":
            metrics.expired(tag).inc()
        if result.outcome != "succeeded":
            log.info(
                "command_processed",
                outcome=result.outcome,
                attempts=result.attempts,
                error=result.error.code if result.error else None,
                **_where(record, result.command_id, tag),
            )
        elif log.is_enabled_for(logging.DEBUG):  # a success is one line only when debugging
            log.debug(
                "command_processed", outcome="succeeded", **_where(record, result.command_id, tag)
            )


def record_time(record: Record) -> datetime:
    """When the record was produced; now, when its timestamp is none (-1) or out of range.

    The timestamp is the producer's to set: a year-10000 value must not raise here.
    """
    try:
        if record.timestamp >= 0:
            return datetime.fromtimestamp(record.timestamp / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        pass
    return datetime.now(UTC)


def _where(
    record: Record, command_id: str | None = None, command: str | None = None
) -> dict[str, object]:
    """The context of a log line about a record: built only when a line is written."""
    context: dict[str, object] = {"partition": record.partition, "offset": record.offset}
    if command_id is not None:
        context["command_id"] = command_id
    if command is not None:
        context["command"] = command
    return context


def _refused_marker(command: Command, refusal: str) -> CommandDecodeError:
    """A command whose replay header is not one the worker writes: rejected as invalid."""
    return CommandDecodeError(
        kind="invalid_field",
        path="$",
        reason=refusal,
        command=command.tag(),
        command_id=command.id,
        app_id=command.app_id,
    )


def _decode(value: bytes | None) -> DecodedCommand:
    if value is None:
        raise CommandDecodeError(
            kind="malformed_json", path="$", reason="the record has no value (null)"
        )
    return decode_command(value)


def _uncancel() -> None:
    """The interruption was an abandonment, handled here: the task goes on uncancelled."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
