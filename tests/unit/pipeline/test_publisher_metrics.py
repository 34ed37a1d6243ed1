"""The produce path reports latency, size and errors per topic (error class included)."""

from __future__ import annotations

import asyncio

from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from prometheus_client import CollectorRegistry

from worker.kafka.memory import InMemoryBroker
from worker.kafka.ports import RecordRejectedError
from worker.metrics import Metrics
from worker.observability.health import Health
from worker.pipeline.outputs import OutputRecord
from worker.pipeline.publisher import Publisher
from worker.settings import Settings


async def no_wait(_: float) -> None:
    return None


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_latency_size_and_errors_are_recorded_per_topic() -> None:
    settings = Settings()
    broker = InMemoryBroker()
    broker.create_topic("results")
    broker.create_topic("dlq")
    failures: list[BaseException] = [KafkaTimeoutError()]  # the first send fails, then none
    broker.send_fault = lambda *_: failures.pop() if failures else None
    sink = broker.backend(settings).output_sink()
    metrics = Metrics(CollectorRegistry())
    publisher = Publisher(sink, metrics, Health(settings), sleep=no_wait)
    record = OutputRecord("results", b"k", b"x" * 1000, [("h", b"v")])
    assert await publisher.deliver([record]) == []
    assert sample(metrics, "convoai_produce_seconds_count", topic="results") == 1
    assert sample(metrics, "convoai_record_bytes_count", topic="results") == 1
    assert sample(metrics, "convoai_record_bytes_sum", topic="results") == len(record.value or b"")
    assert (
        sample(
            metrics,
            "convoai_produce_errors_total",
            topic="results",
            kind="transient",
            error="KafkaTimeoutError",
        )
        == 1
    )

    def refuse(*_: object) -> BaseException:
        error = RecordRejectedError("too large")  # as the aiokafka sink wraps it
        error.__cause__ = MessageSizeTooLargeError()
        return error

    broker.send_fault = refuse
    [rejected] = await publisher.deliver([record._replace(topic="dlq")])
    assert rejected.record.topic == "dlq"
    assert (
        sample(
            metrics,
            "convoai_produce_errors_total",
            topic="dlq",
            kind="rejected",
            error="MessageSizeTooLargeError",
        )
        == 1
    )
    assert sample(metrics, "convoai_produce_seconds_count", topic="dlq") == 0


def test_process_and_python_series_are_exported() -> None:
    names = {family.name for family in Metrics(CollectorRegistry()).registry.collect()}
    assert {
        "process_cpu_seconds",
        "process_resident_memory_bytes",
        "python_gc_collections",
    } <= names


async def test_a_very_long_outage_is_waited_out() -> None:
    """Backoff stays bounded after any number of failed rounds (no float overflow at ~1,000)."""
    settings = Settings()
    broker = InMemoryBroker()
    broker.create_topic("results")
    failures: list[BaseException] = [KafkaTimeoutError() for _ in range(1_100)]
    broker.send_fault = lambda *_: failures.pop() if failures else None
    sink = broker.backend(settings).output_sink()
    publisher = Publisher(sink, Metrics(CollectorRegistry()), Health(settings), sleep=no_wait)
    assert await publisher.deliver([OutputRecord("results", None, b"{}", [])]) == []
    assert len(broker.records("results")) == 1


async def test_readiness_recovers_as_soon_as_any_delivery_succeeds() -> None:
    """A delivery that keeps failing makes the worker not ready; when it is given up (its
    command interrupted), the next delivery that succeeds makes it ready again. A delivery that
    succeeds while nothing failed leaves readiness alone."""
    settings = Settings()
    broker = InMemoryBroker()
    broker.create_topic("results")
    health = Health(settings)
    health.producer_ready(True)
    health.group_state(joined=True, assigned_partitions=1)
    broker.send_fault = lambda *_: KafkaTimeoutError()
    failed = asyncio.Event()

    async def backoff(_: float) -> None:
        failed.set()
        await asyncio.Event().wait()  # the retry pause, until the delivery is given up

    publisher = Publisher(broker.output_sink(), Metrics(CollectorRegistry()), health, sleep=backoff)
    stuck = asyncio.create_task(publisher.deliver([OutputRecord("results", None, b"1", [])]))
    await failed.wait()
    assert not health.readiness().ok
    stuck.cancel()  # its command was interrupted: this delivery will never succeed
    broker.send_fault = None
    assert not health.readiness().ok
    assert await publisher.deliver([OutputRecord("results", None, b"2", [])]) == []
    assert health.readiness().ok
    assert not health.outputs_failed
