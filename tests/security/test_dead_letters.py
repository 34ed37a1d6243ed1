"""Dead letters on the real broker: kept no longer than the commands they copy, and without
the commands' secrets when redaction is on (at the price of replaying them as they are)."""

from __future__ import annotations

import msgspec
import pytest
import structlog
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from contracts.headers import DLQ_REDACTED
from devtools.workload import agent_properties
from tests import kafka
from tests.emulator.harness import RunningEmulator
from tests.pipeline.conftest import ROLES
from tests.pipeline.harness import (
    in_process_worker,
    make_settings,
    produce,
    read_topic,
    wait_for_results,
)
from worker.commands.dead_letters import parse
from worker.commands.replay import plan

pytestmark = pytest.mark.kafka

HOUR_MS = 3_600_000
SECRETS = ("llm-key", "tts-key", "rtc-token")


async def retention_ms(bootstrap: str, topic: str) -> int:
    """The topic's effective `retention.ms`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": None})
        (response,) = await admin.describe_configs([resource])
    finally:
        await admin.close()
    ((_, _, _, _, entries),) = response.resources
    return int(next(value for name, value, *_ in entries if name == "retention.ms"))


async def test_a_dead_letter_topic_created_by_the_worker_keeps_no_longer_than_the_commands(
    kafka_bootstrap: str, names: dict[str, str], emulator: RunningEmulator
) -> None:
    """The commands topic keeps records one hour: the dead-letter topic the worker creates next
    to it gets the same hour, not the cluster's week."""
    await kafka.create_topics(
        kafka_bootstrap, [names["commands"]], configs={"retention.ms": str(HOUR_MS)}
    )
    settings = make_settings(kafka_bootstrap, names, emulator.api_url, create_topics=True)
    async with in_process_worker(settings):
        pass
    assert await retention_ms(kafka_bootstrap, names["dlq"]) == HOUR_MS
    assert await retention_ms(kafka_bootstrap, names["results"]) != HOUR_MS  # the default


async def test_an_existing_dead_letter_topic_that_outlives_the_commands_is_warned_about(
    kafka_bootstrap: str, names: dict[str, str], emulator: RunningEmulator
) -> None:
    """The worker changes no existing topic, but says which one keeps secrets too long."""
    await kafka.create_topics(
        kafka_bootstrap, [names["commands"]], configs={"retention.ms": str(HOUR_MS)}
    )
    await kafka.create_topics(
        kafka_bootstrap, [names["dlq"]], configs={"retention.ms": str(30 * 24 * HOUR_MS)}
    )
    settings = make_settings(kafka_bootstrap, names, emulator.api_url, create_topics=True)
    with structlog.testing.capture_logs() as logs:
        async with in_process_worker(settings):
            pass
    (warning,) = [line for line in logs if line["event"] == "dlq_kept_longer_than_commands"]
    assert (warning["dlq_retention_ms"], warning["commands_retention_ms"]) == (
        30 * 24 * HOUR_MS,
        HOUR_MS,
    )


def poison(command_id: str) -> dict[str, object]:
    """An agent.start with the keys and token of a real one, invalid (no remote_rtc_uids)."""
    properties = agent_properties("room-1")
    del properties["remote_rtc_uids"]
    properties["token"] = "rtc-token"
    properties["llm"] = {"url": "https://llm.invalid/v1", "api_key": "llm-key"}
    properties["tts"] = {"vendor": "microsoft", "params": {"key": "tts-key"}}
    return {"command": "agent.start", "id": command_id, "name": "bot", "properties": properties}


@pytest.mark.parametrize("redact", [False, True], ids=["default", "redacted"])
async def test_dead_letters_carry_the_commands_secrets_only_without_redaction(
    kafka_bootstrap: str, names: dict[str, str], emulator: RunningEmulator, redact: bool
) -> None:
    """By default the dead letter is the original, replayable as it is; with
    CONVOAI_DLQ_REDACT_SECRETS it has every key and token masked, says so, and `dlq replay`
    skips it."""
    for role in ROLES:
        await kafka.create_topics(kafka_bootstrap, [names[role]])
    command = poison("poison-1")
    await produce(kafka_bootstrap, names["commands"], [command])
    settings = make_settings(kafka_bootstrap, names, emulator.api_url, dlq_redact_secrets=redact)
    async with in_process_worker(settings):
        await wait_for_results(kafka_bootstrap, names["results"], {"poison-1"})
    (record,) = await read_topic(kafka_bootstrap, names["dlq"])
    letter = parse(record)
    replays, skipped = plan(names["dlq"], [letter], new_ids=False)
    leaked = [secret for secret in SECRETS if secret.encode() in record.value]
    if not redact:
        assert record.value == msgspec.json.encode(command)
        assert leaked == list(SECRETS)
        assert (len(replays), skipped) == (1, [])
        return
    assert leaked == []
    masked = msgspec.json.decode(record.value)["properties"]
    assert (masked["token"], masked["llm"]["api_key"], masked["tts"]["params"]["key"]) == (
        "***",
        "***",
        "***",
    )
    assert (DLQ_REDACTED, b"true") in list(record.headers)
    assert letter.redacted
    assert replays == []
    assert "masked" in skipped[0].reason
