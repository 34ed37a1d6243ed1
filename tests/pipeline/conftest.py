"""Fixtures for whole-worker tests: four fresh topics and an emulator per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests import kafka
from tests.conftest import TopicFactory
from tests.emulator.harness import RunningEmulator, running_emulator
from tests.pipeline.harness import OPEN_EMULATOR

COMMAND_PARTITIONS = 4
ROLES = ("commands", "results", "state", "dlq")


async def pipeline_topics(
    topic_factory: TopicFactory, partitions: int = COMMAND_PARTITIONS
) -> dict[str, str]:
    """Commands and results (`partitions` each), compacted agent state and DLQ topics."""
    return {
        "commands": await topic_factory("commands", partitions=partitions),
        "results": await topic_factory("results", partitions=partitions),
        "state": await topic_factory("state", partitions=2, configs={"cleanup.policy": "compact"}),
        "dlq": await topic_factory("dlq"),
    }


@pytest.fixture
async def topics(topic_factory: TopicFactory) -> dict[str, str]:
    """Commands (4 partitions), results, compacted agent state and DLQ topics for one test."""
    return await pipeline_topics(topic_factory)


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    """A healthy emulator with room for many agents."""
    async with running_emulator(OPEN_EMULATOR) as running:
        yield running


@pytest.fixture
async def names(kafka_bootstrap: str) -> AsyncIterator[dict[str, str]]:
    """Four topic names nobody created (for tests of topic creation); whatever the test
    creates is deleted afterwards."""
    chosen = {role: kafka.unique_name(role) for role in ROLES}
    yield chosen
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics()) & set(chosen.values())
    finally:
        await admin.close()
    if existing:
        await kafka.delete_topics(kafka_bootstrap, sorted(existing))
