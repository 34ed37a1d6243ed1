"""What the Kafka cluster says about itself and the worker's topics, for pre-flight checks.

One short-lived admin client asks for the brokers, each topic's partition count and the
agent-state topic's cleanup policy; it is closed again before the answer is returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from worker.kafka.connection import client_options, stop_within
from worker.settings import Settings

REQUEST_TIMEOUT_MS = 10_000  # a metadata request is answered in milliseconds


class TopicView(NamedTuple):
    """A topic as the cluster reports it; `partitions` 0 when it does not exist."""

    name: str
    partitions: int
    cleanup_policy: str  # "" when unknown (a missing topic)


class ClusterView(NamedTuple):
    """The brokers the cluster reports and the topics asked about, in the order asked."""

    brokers: int
    topics: list[TopicView]


async def describe(settings: Settings, topics: Sequence[str] = ()) -> ClusterView:
    """Connect with the worker's settings and describe the cluster and `topics`.

    Raises what aiokafka raises when the cluster cannot be reached or refuses the client.
    """
    admin = AIOKafkaAdminClient(request_timeout_ms=REQUEST_TIMEOUT_MS, **client_options(settings))
    try:
        await admin.start()
        brokers = len((await admin.describe_cluster())["brokers"])
        views = await _topics(admin, topics) if topics else []
    finally:
        await stop_within(admin.close(), "admin")
    return ClusterView(brokers, views)


async def _topics(admin: AIOKafkaAdminClient, names: Sequence[str]) -> list[TopicView]:
    described = {t["topic"]: t for t in await admin.describe_topics(list(names))}
    existing = [n for n in names if not described[n]["error_code"]]
    policies = await _cleanup_policies(admin, existing) if existing else {}
    return [
        TopicView(name, len(described[name]["partitions"]), policies.get(name, ""))
        if name in existing
        else TopicView(name, 0, "")
        for name in names
    ]


async def _cleanup_policies(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, str]:
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, name, {"cleanup.policy": None}) for name in names
    ]
    policies: dict[str, str] = {}
    for response in await admin.describe_configs(resources):
        for _code, _message, _kind, name, entries in response.resources:
            policies[name] = next((e[1] for e in entries if e[0] == "cleanup.policy"), "")
    return policies
