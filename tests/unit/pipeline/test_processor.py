"""What the processor makes of interruptions and of its own bugs, on the in-memory broker.

An abandoned record whose call may have reached the API is finished as `unknown`; one that did
not is left unfinished (`AbandonedError`); a killed one propagates the cancellation whatever it
was doing, so that its worker ends; once the outputs of what ran are being published, the
record is no longer interruptible; an unexpected exception becomes an `internal_error` result
and a dead letter, and the processor returns normally.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from contracts import DecodedCommand, ErrorInfo, Outcome, ResultEvent, decode_result
from tests.jobs import Job
from worker.errors import AbandonedError
from worker.execution import Execution
from worker.execution.caller import Progress
from worker.kafka.memory import InMemoryBroker
from worker.metrics import Metrics
from worker.observability.health import Health
from worker.pipeline.dedupe import CompletedCommands
from worker.pipeline.outputs import Outputs
from worker.pipeline.processor import CommandProcessor
from worker.pipeline.publisher import Publisher
from worker.settings import Settings

SETTINGS = Settings()
SPEAK = {"command": "agent.speak", "id": "s-1", "agent_id": "A", "text": "hello"}


class HeldExecutor:
    """Sends (marks the call in doubt), then waits for `answer`; raises `failure` if set."""

    def __init__(self, *, in_doubt: bool = True) -> None:
        self.in_doubt = in_doubt
        self.sent = asyncio.Event()
        self.answer = asyncio.Event()
        self.failure: Exception | None = None

    async def execute(
        self, decoded: DecodedCommand, *, received_at: datetime, progress: Progress | None = None
    ) -> Execution:
        if progress is not None:
            progress.attempts, progress.in_doubt = 1, self.in_doubt
        self.sent.set()
        await self.answer.wait()
        if self.failure is not None:
            raise self.failure
        return Execution(result(decoded, "succeeded", received_at), [])

    def interrupted(
        self, decoded: DecodedCommand, *, received_at: datetime, progress: Progress
    ) -> Execution:
        del progress
        error = ErrorInfo(code="ambiguous_interrupted", message="interrupted")
        return Execution(result(decoded, "unknown", received_at, error), [])


def result(
    decoded: DecodedCommand, outcome: Outcome, received_at: datetime, error: ErrorInfo | None = None
) -> ResultEvent:
    return ResultEvent(
        command_id=decoded.command.id,
        command=decoded.command.tag(),
        outcome=outcome,
        error=error,
        attempts=1,
        received_at=received_at,
        completed_at=datetime.now(UTC),
        duration_ms=0.0,
    )


@pytest.fixture
def broker() -> InMemoryBroker:
    cluster = InMemoryBroker()
    for topic in (SETTINGS.topic_commands, SETTINGS.topic_results, SETTINGS.topic_dlq):
        cluster.create_topic(topic)
    cluster.create_topic(SETTINGS.topic_state)
    return cluster


def processor(broker: InMemoryBroker, executor: HeldExecutor) -> CommandProcessor:
    metrics = Metrics(CollectorRegistry())
    return CommandProcessor(
        executor,
        Outputs(SETTINGS),
        Publisher(broker.output_sink(), metrics, Health(SETTINGS)),
        CompletedCommands(100),
        metrics,
    )


def started(broker: InMemoryBroker, executor: HeldExecutor) -> tuple[Job, asyncio.Task[None]]:
    job = Job(broker.produce(SETTINGS.topic_commands, msgspec.json.encode(SPEAK), key=b"A"))
    return job, asyncio.create_task(processor(broker, executor)(job))


def outcomes(broker: InMemoryBroker) -> list[str]:
    return [decode_result(r.value or b"").outcome for r in broker.records(SETTINGS.topic_results)]


async def test_an_abandoned_call_in_doubt_finishes_as_unknown(broker: InMemoryBroker) -> None:
    """Cancelled with the abandon mark while its request may have reached the API: `unknown`."""
    executor = HeldExecutor()
    job, task = started(broker, executor)
    await executor.sent.wait()
    job.abandoned = True
    task.cancel()
    await task
    assert outcomes(broker) == ["unknown"]


async def test_an_abandoned_record_not_yet_sent_is_left_unfinished(broker: InMemoryBroker) -> None:
    """Cancelled with the abandon mark before anything may have reached the API:
    `AbandonedError`, no output."""
    executor = HeldExecutor(in_doubt=False)
    job, task = started(broker, executor)
    await executor.sent.wait()
    job.abandoned = True
    task.cancel()
    with pytest.raises(AbandonedError):
        await task
    assert outcomes(broker) == []


async def test_a_killed_record_propagates_the_cancellation_even_when_abandoned(
    broker: InMemoryBroker,
) -> None:
    """Abandoned and then killed: the task is cancelled, nothing is published, nothing parks."""
    executor = HeldExecutor()
    job, task = started(broker, executor)
    await executor.sent.wait()
    job.abandoned = job.killed = True
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert outcomes(broker) == []


async def test_a_record_publishing_what_ran_is_no_longer_interruptible(
    broker: InMemoryBroker,
) -> None:
    """Once the API answered, the record is publishing its outputs: a release must let it."""
    executor = HeldExecutor()
    broker.send_latency = lambda _: 1.0
    job, task = started(broker, executor)
    await executor.sent.wait()
    executor.answer.set()
    await asyncio.sleep(0.5)  # the result's acknowledgement takes 1 s
    assert not job.interruptible
    await task
    assert outcomes(broker) == ["succeeded"]


async def test_a_bug_becomes_a_failed_result_and_a_dead_letter(broker: InMemoryBroker) -> None:
    """An unexpected exception: `internal_error`, the dead letter names it, no exception out."""
    executor = HeldExecutor()
    executor.failure = KeyError("surprise")
    executor.answer.set()
    _, task = started(broker, executor)
    await task
    (letter,) = broker.records(SETTINGS.topic_dlq)
    (record,) = broker.records(SETTINGS.topic_results)
    error = decode_result(record.value or b"").error
    assert error is not None
    assert error.code == "internal_error"
    assert dict(letter.headers)["__connect.errors.exception.class.name"] == b"KeyError"
    assert letter.sequence < record.sequence  # the dead letter first, the result last
