"""The real Kafka broker of the test session: its own, unless one is named explicitly.

Tests that claim Kafka behaviour run against a real broker. The session starts one with
`scripts/kafka` in a temporary directory on free ports (so it never meets a broker someone else
runs, and never creates or deletes topics there) and stops it at the end. `CONVOAI_TEST_BOOTSTRAP`
names an existing broker to use instead. When Java or Maven is missing, starting fails with the
script's message naming what to install: Kafka tests are never skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from devtools.local import free_port

ROOT = Path(__file__).resolve().parent.parent
EXPLICIT_BOOTSTRAP = "CONVOAI_TEST_BOOTSTRAP"


@contextlib.contextmanager
def running_broker(
    directory: Path, ports: Mapping[str, int] | None = None, **extra_env: str
) -> Iterator[Mapping[str, int]]:
    """Run a broker with its data in `directory`; yields its `broker` and `controller` ports.

    The ports are free ones unless given; `extra_env` reaches `scripts/kafka` (e.g.
    `KAFKA_EXTRA_CONFIG` for more listeners).
    """
    ports = ports or {"broker": free_port(), "controller": free_port()}
    env: Mapping[str, str] = {
        "KAFKA_RUN": str(directory),
        "KAFKA_BROKER_PORT": str(ports["broker"]),
        "KAFKA_CONTROLLER_PORT": str(ports["controller"]),
        **extra_env,
    }
    try:
        kafka_script("up", env)
    except RuntimeError as error:
        raise RuntimeError(f"the Kafka tests need a real broker: {error}") from None
    try:
        yield ports
    finally:
        # stops only the broker whose pid file this run wrote; the session ends either way
        with contextlib.suppress(RuntimeError):
            kafka_script("down", env, timeout=120)


def kafka_script(
    action: str, env: Mapping[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run `scripts/kafka ACTION` (with `env` added to the environment, e.g. `KAFKA_RUN` and
    the ports of a broker of one's own); raise with its output when it fails."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "kafka"), action],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"`scripts/kafka {action}` failed (exit {proc.returncode}):\n{proc.stderr}{proc.stdout}"
        )
    return proc


def unique_name(prefix: str) -> str:
    """A topic or group name no other test (or earlier run) uses."""
    return f"test.{prefix}.{uuid.uuid4().hex[:12]}"


async def create_topics(
    bootstrap: str, names: list[str], *, partitions: int = 1, configs: dict[str, str] | None = None
) -> None:
    """Create topics and wait until the broker serves metadata for them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, partitions, 1, topic_configs=configs or {}) for n in names]
        )
        for _ in range(100):
            described = await admin.describe_topics(names)
            if all(not t["error_code"] and len(t["partitions"]) == partitions for t in described):
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"topics {names} not ready")
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    """Delete test topics; a topic already gone is fine."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


async def max_message_bytes(bootstrap: str, topic: str) -> int:
    """The largest record batch the broker accepts on `topic` (`max.message.bytes`)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": None})
        (response,) = await admin.describe_configs([resource])
        ((_, _, _, _, entries),) = response.resources
        return next(int(entry[1]) for entry in entries if entry[0] == "max.message.bytes")
    finally:
        await admin.close()
