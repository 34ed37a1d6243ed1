"""Access to the real Kafka broker for tests: find it, or start it with `scripts/kafka`.

Tests that claim Kafka behaviour run against a real broker. When none answers on the bootstrap
address the session starts one (and stops it at the end); when Java or Maven is missing that
fails with the script's message naming what to install, so Kafka tests are never skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = os.environ.get("CONVOAI_KAFKA_BOOTSTRAP", "127.0.0.1:9092")


def broker_reachable(bootstrap: str = BOOTSTRAP) -> bool:
    """True when something accepts TCP connections on the first bootstrap address."""
    host, _, port = bootstrap.split(",", maxsplit=1)[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


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


def start_broker() -> None:
    """Run `scripts/kafka up`; raise with its output when it cannot start a broker."""
    try:
        kafka_script("up")
    except RuntimeError as error:
        raise RuntimeError(f"the Kafka tests need a real broker: {error}") from None


def stop_broker() -> None:
    """Run `scripts/kafka down` (stops only the broker whose pid file the script wrote)."""
    with contextlib.suppress(RuntimeError):  # the session ends either way
        kafka_script("down", timeout=120)


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
