"""Create the worker's topics at startup, or say exactly which ones are missing.

The agent-state topic must be log-compacted (a new consumer reads the latest state of every
agent); the others use the cluster defaults. Dead letters are copies of commands (with the
LLM and TTS keys and RTC tokens they carry), so they are kept no longer than the commands: a
dead-letter topic created next to an existing commands topic gets its `retention.ms`, and an
existing one that keeps records longer is warned about at start. When the worker may not
create topics (no ACL, or `CONVOAI_CREATE_TOPICS=false`), a missing topic is a configuration
error reported by name.
"""

from __future__ import annotations

import asyncio

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, for_code

from worker.kafka.connection import client_options
from worker.settings import Settings

log = structlog.get_logger(__name__)

LEADER_WAIT_ATTEMPTS = 300  # x 0.1 s
COMPACTED = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"}
RETENTION = "retention.ms"
FOREVER = -1


class MissingTopicsError(RuntimeError):
    """Topics the worker needs do not exist and it may not create them."""

    def __init__(self, missing: list[str], bootstrap: str) -> None:
        super().__init__(
            f"missing Kafka topics on {bootstrap}: {', '.join(missing)} "
            "(create them, or set CONVOAI_CREATE_TOPICS=true to let the worker create them)"
        )
        self.missing = missing


def required_topics(settings: Settings) -> dict[str, dict[str, str]]:
    """Topic name -> the configs it is created with."""
    return {
        settings.topic_commands: {},
        settings.topic_results: {},
        settings.topic_state: COMPACTED,
        settings.topic_dlq: {},
    }


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the missing topics (when allowed); return the names that were created."""
    wanted = required_topics(settings)
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        commands, dlq = settings.topic_commands, settings.topic_dlq
        retention = await _retention(admin, commands) if commands in existing else None
        if retention is not None and dlq in missing:
            wanted[dlq] = {**wanted[dlq], RETENTION: str(retention)}
        elif retention is not None:
            await _warn_if_kept_longer(admin, dlq, retention)
        if not missing:
            return []
        if not settings.create_topics:
            raise MissingTopicsError(missing, settings.kafka_bootstrap)
        new = [
            NewTopic(
                name,
                settings.topic_partitions,
                settings.topic_replication_factor,
                topic_configs=wanted[name],
            )
            for name in missing
        ]
        response = await admin.create_topics(new)
        for topic, code, *message in response.topic_errors:
            # another replica may have created it first: that is success
            if code and for_code(code) is not TopicAlreadyExistsError:
                detail = message[0] if message and message[0] else for_code(code).__name__
                raise RuntimeError(f"could not create topic {topic!r}: {detail}")
        await _wait_for_leaders(admin, missing)
        return missing
    finally:
        await admin.close()


async def _retention(admin: AIOKafkaAdminClient, topic: str) -> int | None:
    """A topic's effective `retention.ms` (its own, or the cluster's default); None when the
    worker may not read it (no DescribeConfigs ACL): then nothing is compared or copied."""
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, {RETENTION: None})
    for response in await admin.describe_configs([resource]):
        for error, message, _, _, entries in response.resources:
            if error:
                log.warning("topic_retention_unreadable", topic=topic, error=message or error)
                return None
            for name, value, *_ in entries:
                if name == RETENTION:
                    return int(value)
    return None


async def _warn_if_kept_longer(admin: AIOKafkaAdminClient, dlq: str, commands_ms: int) -> None:
    """Warn when dead letters outlive the commands they copy (the topic is left as it is)."""
    dlq_ms = await _retention(admin, dlq)
    if dlq_ms is None or commands_ms == FOREVER:
        return
    if dlq_ms == FOREVER or dlq_ms > commands_ms:
        log.warning(
            "dlq_kept_longer_than_commands",
            dlq_topic=dlq,
            dlq_retention_ms=dlq_ms,
            commands_retention_ms=commands_ms,
            fix=f"set {RETENTION} of the dead-letter topic to at most the commands topic's",
        )


async def _wait_for_leaders(admin: AIOKafkaAdminClient, topics: list[str]) -> None:
    """Block until every partition of new topics has a leader.

    Readers that start right after creation otherwise log NotLeaderForPartition errors.
    """
    for _ in range(LEADER_WAIT_ATTEMPTS):
        described = await admin.describe_topics(topics)
        if all(
            not topic["error_code"]
            and topic["partitions"]
            and all(p["leader"] >= 0 for p in topic["partitions"])
            for topic in described
        ):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"new topics have no partition leaders after 30 s: {', '.join(topics)}")
