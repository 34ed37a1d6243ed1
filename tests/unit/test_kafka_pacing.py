"""A failed metadata refresh returns only after a pause, so aiokafka's loops that retry it at
once (producer with an unknown leader, fetcher) cannot spin while the broker is unreachable."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaClient

from worker.kafka.aio import AioCommandSource, AioOutputSink, AioTopicReader
from worker.kafka.pacing import FAILED_REFRESH_PAUSE_SECONDS, pace_failed_metadata_refreshes
from worker.settings import Settings


class Recorder:
    def __init__(self) -> None:
        self.pauses: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)


async def test_a_refresh_that_reaches_no_broker_pauses_before_it_returns() -> None:
    # no broker known and none bootstrapped: aiokafka's refresh fails at once
    client = AIOKafkaClient(bootstrap_servers="127.0.0.1:9")
    sleep = Recorder()
    pace_failed_metadata_refreshes(client, pause=0.5, sleep=sleep)
    for _ in range(3):
        assert await client._metadata_update(client.cluster, set()) is False
    assert sleep.pauses == [0.5, 0.5, 0.5]


async def test_a_successful_refresh_is_not_delayed() -> None:
    class Client:
        async def _metadata_update(self, _cluster: object, _topics: object) -> bool:
            return True

    client, sleep = Client(), Recorder()
    pace_failed_metadata_refreshes(client, sleep=sleep)
    assert await client._metadata_update(None, set()) is True
    assert sleep.pauses == []


@pytest.fixture
def settings() -> Settings:
    return Settings(kafka_bootstrap="127.0.0.1:9")


async def test_every_client_of_the_worker_is_paced(settings: Settings) -> None:
    source, sink = AioCommandSource(settings), AioOutputSink(settings)
    reader = AioTopicReader(settings, "t", "test")
    clients = {
        "commands consumer": source._consumer._client,
        "offsets admin": source._admin._client,
        "producer": sink._producer.client,
        "topic reader": reader._consumer._client,
    }
    unpaced = [
        name for name, client in clients.items() if client._metadata_update.__name__ != "paced"
    ]
    for port in (source, sink, reader):
        await port.close()
    assert unpaced == []
    assert FAILED_REFRESH_PAUSE_SECONDS >= 0.1  # at least aiokafka's own retry backoff
