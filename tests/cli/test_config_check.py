"""`convoai-worker config --check` against the real broker and the API emulator: one line per
check, exit 1 when any failed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.conftest import TopicFactory
from tests.console import clean_environment, console
from tests.emulator.harness import running_emulator
from tests.kafka import unique_name
from worker.emulator.config import EmulatorConfig

pytestmark = pytest.mark.kafka

TENANTS = {"app-one": ("customer-one", "secret-one"), "app-two": ("customer-two", "secret-two")}
NOT_COMPACTED = "agent states would be deleted with age instead of kept per agent"
CREATE_IT = "create it before `run`"
NO_WEBHOOK_SECRET = "CONVOAI_WEBHOOK_SECRET is not set, so /webhooks/agora refuses every callback"
NO_TENANT_SECRET = (
    "no webhook_secret in CONVOAI_API_CREDENTIALS_FILE, so its endpoint refuses every callback"
)
DEFAULT_TOPICS = (
    "convoai.commands",
    "convoai.results",
    "convoai.agent-state",
    "convoai.commands.dlq",
)
EMULATOR = EmulatorConfig(tenants={app: ":".join(pair) for app, pair in TENANTS.items()})


def credentials_file(
    path: Path, wrong_secret_of: str | None = None, *, webhook_secrets: bool = True
) -> Path:
    """The per-tenant credentials file (each App ID with its NCS secret unless told not to);
    one App ID's API secret wrong when asked."""
    entries = {
        app: {
            "customer_id": cid,
            "customer_secret": "wrong" if app == wrong_secret_of else s,
            **({"webhook_secret": f"ncs-{app}"} if webhook_secrets else {}),
        }
        for app, (cid, s) in TENANTS.items()
    }
    path.write_text(json.dumps(entries))
    return path


async def check(**variables: str) -> tuple[int, list[str]]:
    """Run `config --check --webhooks` with exactly `variables`; (exit code, stdout lines)."""
    env = clean_environment(CONVOAI_ENV_FILE="", **variables)
    result = await asyncio.to_thread(console, "config", "--check", "--webhooks", env=env)
    return result.returncode, result.stdout.splitlines()


def worker_env(bootstrap: str, topics: list[str], api_url: str) -> dict[str, str]:
    """The broker, the four topics (commands, results, state, DLQ; not created) and the API."""
    names = ("COMMANDS", "RESULTS", "STATE", "DLQ")
    return {
        "CONVOAI_KAFKA_BOOTSTRAP": bootstrap,
        **{f"CONVOAI_TOPIC_{name}": topic for name, topic in zip(names, topics, strict=True)},
        "CONVOAI_CREATE_TOPICS": "false",
        "CONVOAI_API_BASE_URL": api_url,
    }


def masked(lines: list[str]) -> list[str]:
    """The lines with the API's answer time left out."""
    return [line.split(" in ")[0] if line.startswith("api ") else line for line in lines]


async def test_a_good_setup_passes_every_check(
    kafka_bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    commands = await topic_factory("commands", partitions=3)
    results = await topic_factory("results", partitions=3)
    state = await topic_factory("state", configs={"cleanup.policy": "compact"})
    dlq = await topic_factory("dlq")
    async with running_emulator(EMULATOR) as emulator:
        code, lines = await check(
            **worker_env(kafka_bootstrap, [commands, results, state, dlq], emulator.api_url),
            CONVOAI_API_CREDENTIALS_FILE=str(credentials_file(tmp_path / "tenants.json")),
        )
    assert masked(lines) == [
        f"kafka {kafka_bootstrap}: ok (1 broker)",
        f"topic {commands}: ok (3 partitions)",
        f"topic {results}: ok (3 partitions)",
        f"topic {state}: ok (1 partition)",
        f"topic {dlq}: ok (1 partition)",
        "api app-one: ok (agent.list answered 200",
        "api app-two: ok (agent.list answered 200",
        "webhooks app-one: ok (its webhook_secret is set (/webhooks/agora/app-one))",
        "webhooks app-two: ok (its webhook_secret is set (/webhooks/agora/app-two))",
    ]
    assert code == 0
    assert [(e.operation, e.query) for e in emulator.log.entries()] == [
        ("agent.list", "limit=1"),
        ("agent.list", "limit=1"),
    ]


async def test_a_broken_setup_names_each_failure(
    kafka_bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    """A wrong secret for one tenant, a state topic that is not compacted, a missing topic the
    worker may not create, webhooks expected without a secret: each its own failed line."""
    commands = await topic_factory("commands")
    results = await topic_factory("results")
    state = await topic_factory("state")
    missing = unique_name("dlq")
    async with running_emulator(EMULATOR) as emulator:
        code, lines = await check(
            **worker_env(kafka_bootstrap, [commands, results, state, missing], emulator.api_url),
            CONVOAI_API_CREDENTIALS_FILE=str(
                credentials_file(tmp_path / "t.json", "app-two", webhook_secrets=False)
            ),
        )
    assert code == 1
    failed = [line for line in lines if ": failed: " in line]
    assert failed == [
        f"topic {state}: failed: cleanup.policy is delete, not compact: {NOT_COMPACTED}",
        f"topic {missing}: failed: missing, and CONVOAI_CREATE_TOPICS=false: {CREATE_IT}",
        "api app-two: failed: agent.list: HTTP 401 authentication failed",
        f"webhooks app-one: failed: {NO_TENANT_SECRET}",
        f"webhooks app-two: failed: {NO_TENANT_SECRET}",
    ]
    assert len(lines) == 9


async def test_an_unreachable_cluster_fails_with_its_cause() -> None:
    """The topics cannot be checked without the cluster; they say so instead of passing."""
    async with running_emulator(EmulatorConfig()) as emulator:
        code, lines = await check(
            CONVOAI_KAFKA_BOOTSTRAP="127.0.0.1:1",
            CONVOAI_API_BASE_URL=emulator.api_url,
            CONVOAI_CUSTOMER_ID="any-customer",
            CONVOAI_CUSTOMER_SECRET="any-customer-secret",
            CONVOAI_APP_ID="app-one",
            CONVOAI_WEBHOOK_SECRET="ncs-secret-0123",
        )
    assert code == 1
    assert lines[0].startswith(
        "kafka 127.0.0.1:1: failed: cannot connect to Kafka at 127.0.0.1:1 (PLAINTEXT): "
    )
    assert lines[1:5] == [
        f"topic {topic}: failed: not checked: Kafka unreachable" for topic in DEFAULT_TOPICS
    ]
    assert masked(lines[5:]) == [
        "api app-one: ok (agent.list answered 200",
        "webhooks: ok (CONVOAI_WEBHOOK_SECRET is set)",
    ]
