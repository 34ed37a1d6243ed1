"""Fixtures for whole workers on the in-memory broker."""

from __future__ import annotations

import pytest

from tests.component.harness import ScriptedApi
from worker.kafka.memory import InMemoryBroker

COMMAND_PARTITIONS = 2


@pytest.fixture
def broker() -> InMemoryBroker:
    """An in-memory cluster with the worker's four topics (commands on two partitions)."""
    cluster = InMemoryBroker()
    cluster.create_topic("convoai.commands", COMMAND_PARTITIONS)
    for topic in ("convoai.results", "convoai.agent-state", "convoai.commands.dlq"):
        cluster.create_topic(topic, COMMAND_PARTITIONS)
    return cluster


@pytest.fixture
def api() -> ScriptedApi:
    """An API that answers at once unless a test holds a request."""
    return ScriptedApi()
