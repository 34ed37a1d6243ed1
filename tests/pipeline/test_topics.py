"""The worker's topics on the real broker: created at startup as configured, or named when
missing and the worker may not create them."""

from __future__ import annotations

import asyncio
import sys

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from prometheus_client import CollectorRegistry

from tests import kafka
from tests.emulator.harness import RunningEmulator
from tests.pipeline.harness import in_process_worker, make_settings, settings_env
from worker.app import Worker
from worker.metrics import Metrics

pytestmark = pytest.mark.kafka


async def described(bootstrap: str, topics: list[str]) -> dict[str, tuple[int, int, str]]:
    """Per topic: partitions, replicas of each partition and `cleanup.policy`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        layout = {
            topic["topic"]: (
                len(topic["partitions"]),
                {len(partition["replicas"]) for partition in topic["partitions"]},
            )
            for topic in await admin.describe_topics(topics)
        }
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, name, {"cleanup.policy": None})
            for name in topics
        ]
        policies: dict[str, str] = {}
        for response in await admin.describe_configs(resources):
            for _, _, _, name, entries in response.resources:
                policies[name] = next(e[1] for e in entries if e[0] == "cleanup.policy")
    finally:
        await admin.close()
    result = {}
    for name, (partitions, replicas) in layout.items():
        assert len(replicas) == 1, f"{name}: partitions with different replica counts"
        result[name] = (partitions, replicas.pop(), policies[name])
    return result


async def test_the_worker_creates_its_four_topics_as_configured(
    kafka_bootstrap: str, names: dict[str, str], emulator: RunningEmulator
) -> None:
    """At startup the four topics get the configured partitions and replication factor; the
    agent-state topic is compacted, the others keep the cluster's delete policy."""
    settings = make_settings(
        kafka_bootstrap,
        names,
        emulator.api_url,
        create_topics=True,
        topic_partitions=3,
        topic_replication_factor=1,
    )
    async with in_process_worker(settings):
        pass
    layout = await described(kafka_bootstrap, list(names.values()))
    assert layout == {
        names["commands"]: (3, 1, "delete"),
        names["results"]: (3, 1, "delete"),
        names["state"]: (3, 1, "compact"),
        names["dlq"]: (3, 1, "delete"),
    }


async def test_the_replication_factor_setting_reaches_the_broker(
    kafka_bootstrap: str, names: dict[str, str], emulator: RunningEmulator
) -> None:
    """A replication factor the single test broker cannot give stops the startup, naming the
    topic and the broker's reason."""
    settings = make_settings(
        kafka_bootstrap,
        names,
        emulator.api_url,
        create_topics=True,
        topic_replication_factor=2,
    )
    worker = Worker(settings, Metrics(CollectorRegistry()))
    with pytest.raises(RuntimeError, match=r"could not create topic .*[Rr]eplication factor"):
        await asyncio.wait_for(worker.run(), 60)


async def test_without_topic_creation_the_missing_topics_are_named(
    kafka_bootstrap: str, names: dict[str, str], emulator: RunningEmulator
) -> None:
    """CONVOAI_CREATE_TOPICS=false: `run` exits 2, one line naming exactly the missing topics."""
    await kafka.create_topics(kafka_bootstrap, [names["commands"], names["results"]])
    settings = make_settings(kafka_bootstrap, names, emulator.api_url, create_topics=False)
    env = settings_env(settings) | {"CONVOAI_LOG_FORMAT": "json"}
    completed = await kafka_run(env)
    assert completed[0] == 2, completed[1]
    [line] = [line for line in completed[1].splitlines() if "worker_cannot_start" in line]
    assert f"missing Kafka topics on {kafka_bootstrap}: {names['state']}, {names['dlq']}" in line
    assert names["commands"] not in line
    assert names["results"] not in line
    assert "CONVOAI_CREATE_TOPICS" in line


async def kafka_run(env: dict[str, str]) -> tuple[int, str]:
    """`convoai-worker run` with `env` until it exits by itself (60 s at most): code, output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker",
        "run",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode()
