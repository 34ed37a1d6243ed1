"""Fixtures of the security tests: fresh topics per test, as the whole-worker tests use."""

from __future__ import annotations

import pytest

from tests.conftest import TopicFactory
from tests.pipeline.conftest import pipeline_topics


@pytest.fixture
async def topics(topic_factory: TopicFactory) -> dict[str, str]:
    """Commands, results, compacted agent-state and DLQ topics for one test."""
    return await pipeline_topics(topic_factory)
