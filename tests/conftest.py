"""Shared fixtures: the real Kafka broker and per-test topics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from tests import kafka

TopicFactory = Callable[..., Awaitable[str]]


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address of a running broker; starts one for the session when none answers."""
    started = False
    if not kafka.broker_reachable():
        kafka.start_broker()
        started = True
    yield kafka.BOOTSTRAP
    if started:
        kafka.stop_broker()


@pytest.fixture
async def topic_factory(kafka_bootstrap: str) -> AsyncIterator[TopicFactory]:
    """Create uniquely named topics for one test and delete them afterwards."""
    created: list[str] = []

    async def make(
        prefix: str = "t", *, partitions: int = 1, configs: dict[str, str] | None = None
    ) -> str:
        name = kafka.unique_name(prefix)
        await kafka.create_topics(kafka_bootstrap, [name], partitions=partitions, configs=configs)
        created.append(name)
        return name

    yield make
    if created:
        await kafka.delete_topics(kafka_bootstrap, created)
