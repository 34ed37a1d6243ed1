"""A broker that lost the producer's sequence (it came back without the acknowledged tail of its
log) answers every later record of the partition with OutOfOrderSequenceNumber: aiokafka keeps
numbering where it was. The sink replaces the producer, and the publisher's next attempt goes
through the new one; seen in the chaos suite's broker outage, where the worker retried for ever."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
from aiokafka.errors import OutOfOrderSequenceNumber, UnknownProducerId
from prometheus_client import CollectorRegistry

from worker.kafka import aio
from worker.metrics import Metrics
from worker.observability.health import Health
from worker.pipeline.outputs import OutputRecord
from worker.pipeline.publisher import Publisher
from worker.settings import Settings


class FakeProducer:
    """Fails every acknowledgement with `error` while it is the first producer made."""

    made: ClassVar[list[FakeProducer]] = []
    error: ClassVar[type[Exception]] = OutOfOrderSequenceNumber

    def __init__(self, **_: Any) -> None:
        self.client = self  # pace_failed_metadata_refreshes wraps this
        self.lost = not FakeProducer.made
        self.started = self.stopped = False
        self.acknowledged: list[bytes | None] = []
        FakeProducer.made.append(self)

    async def _metadata_update(self, _cluster: object, _topics: object) -> bool:
        return True

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, _topic: str, *, value: bytes | None, **_: Any) -> asyncio.Future[None]:
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.lost:
            ack.set_exception(FakeProducer.error())
        else:
            self.acknowledged.append(value)
            ack.set_result(None)
        return ack


async def no_wait(_: float) -> None:
    await asyncio.sleep(0)  # yields, so a delivery that never ends meets the test's timeout


@pytest.fixture
def producers(monkeypatch: pytest.MonkeyPatch) -> list[FakeProducer]:
    FakeProducer.made = []
    FakeProducer.error = OutOfOrderSequenceNumber
    monkeypatch.setattr(aio, "AIOKafkaProducer", FakeProducer)
    return FakeProducer.made


@pytest.mark.parametrize("error", [OutOfOrderSequenceNumber, UnknownProducerId])
async def test_a_lost_sequence_renews_the_producer_once_and_delivery_goes_on(
    producers: list[FakeProducer], error: type[Exception]
) -> None:
    FakeProducer.error = error
    settings = Settings()
    sink = aio.AioOutputSink(settings)
    await sink.start()
    publisher = Publisher(sink, Metrics(CollectorRegistry()), Health(settings), sleep=no_wait)
    records = [OutputRecord("results", b"k", b"r%d" % n, []) for n in range(5)]
    async with asyncio.timeout(5):
        assert await publisher.deliver(records) == []
    first, renewed = producers  # five failed acks, one new producer
    assert first.stopped
    assert renewed.started
    assert not renewed.stopped
    assert renewed.acknowledged == [r.value for r in records]
    await sink.close()
    assert renewed.stopped


async def test_no_producer_is_started_after_close(producers: list[FakeProducer]) -> None:
    sink = aio.AioOutputSink(Settings())
    await sink.start()
    ack = await sink.send("results", b"k", b"v", [])
    await sink.close()
    with pytest.raises(OutOfOrderSequenceNumber):
        await ack
    assert len(producers) == 1
