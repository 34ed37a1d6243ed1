"""Shared fixtures: the real Kafka broker and per-test topics."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests import kafka

TopicFactory = Callable[..., Awaitable[str]]

# `make mutants` (pytest --hypothesis-profile=mutants) runs the tests many times in one process:
# the same (fewer) examples every time, and a test method called again from a new instance is
# expected.
settings.register_profile(
    "mutants",
    max_examples=30,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.differing_executors],
)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's own broker (or the one `CONVOAI_TEST_BOOTSTRAP` names)."""
    explicit = os.environ.get(kafka.EXPLICIT_BOOTSTRAP)
    if explicit:
        yield explicit
        return
    with kafka.running_broker(tmp_path_factory.mktemp("kafka")) as ports:
        yield f"127.0.0.1:{ports['broker']}"


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
