"""No secret in anything the worker emits: a worker process of two App IDs, at DEBUG level, on
the real broker, with credentials in its settings, its credentials file and its commands."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devtools.workload import agent_properties
from tests.console import clean_environment, console
from tests.emulator.harness import running_emulator
from tests.observability.fakes import notice, signed
from tests.pipeline.harness import (
    produce,
    read_topic,
    settings_env,
    spawn_worker,
    stop_process,
    wait_for_results,
    wait_ready,
)
from tests.security.tenants import EMULATOR, TENANTS, A, B, two_tenant_settings

pytestmark = pytest.mark.kafka

GLOBAL_ID, GLOBAL_SECRET = "global-customer-77", "global-customer-secret-77"
COMMAND_SECRETS = ("llm-api-key-0123456789", "tts-vendor-key-9876543210", "rtc-token-5a5a5a5a5a")


def basic(customer_id: str, secret: str) -> str:
    """The Basic `Authorization` value of a customer pair, as the API receives it."""
    return base64.b64encode(f"{customer_id}:{secret}".encode()).decode()


SECRETS = (
    GLOBAL_SECRET,
    basic(GLOBAL_ID, GLOBAL_SECRET),
    *(t.customer_secret for t in TENANTS),
    *(t.webhook_secret for t in TENANTS),
    *(basic(t.customer_id, t.customer_secret) for t in TENANTS),
    *COMMAND_SECRETS,
)


def start(command_id: str, app_id: str, *, valid: bool = True) -> dict[str, Any]:
    """An agent.start that carries an LLM key, a TTS key and an RTC token."""
    properties = agent_properties(command_id)
    properties["llm"]["api_key"] = COMMAND_SECRETS[0]
    properties["tts"]["params"]["key"] = COMMAND_SECRETS[1]
    properties["token"] = COMMAND_SECRETS[2]
    if not valid:
        del properties["remote_rtc_uids"]
    return {
        "command": "agent.start",
        "id": command_id,
        "app_id": app_id,
        "name": command_id,
        "properties": properties,
    }


async def fetch(session: aiohttp.ClientSession, url: str, body: bytes | None, secret: str) -> str:
    """GET `url`, or POST `body` signed with `secret`; the answer's text."""
    if body is None:
        async with session.get(url) as response:
            return await response.text()
    async with session.post(url, data=body, headers=signed(body, secret)) as response:
        return await response.text()


async def test_no_secret_reaches_logs_results_dead_letters_metrics_probes_or_config(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    """Commands that succeed, fail and are dead-lettered (with redaction on), webhooks genuine,
    forged and mislabelled, every page of the ops server, and `config`: none of the customer
    secrets, NCS secrets, Basic values or the commands' keys and tokens appears in them."""
    commands = [
        start("b-start", B.app_id),
        start("a-poison", A.app_id, valid=False),
        {"command": "agent.speak", "id": "a-bad", "app_id": A.app_id, "agent_id": "X", "text": 1},
    ]
    async with running_emulator(EMULATOR) as emulator:
        settings = two_tenant_settings(
            kafka_bootstrap,
            topics,
            emulator.api_url,
            tmp_path,
            customer_id=GLOBAL_ID,
            customer_secret=GLOBAL_SECRET,
            dlq_redact_secrets=True,
            log_level="DEBUG",
        )
        await produce(kafka_bootstrap, topics["commands"], commands)
        log = tmp_path / "worker.log"
        worker = spawn_worker(settings, str(log))
        pages: list[str] = []
        try:
            await wait_ready(settings.http_port)
            results = await wait_for_results(
                kafka_bootstrap, topics["results"], {c["id"] for c in commands}
            )
            (started,) = [r for r in results if r.command_id == "b-start"]
            base = f"http://127.0.0.1:{settings.http_port}"
            joined = notice(101, {"agent_id": started.agent_id, "name": "b-start"})
            async with aiohttp.ClientSession() as session:
                for path, body, secret in (
                    (f"/webhooks/agora/{B.app_id}", joined, B.webhook_secret),
                    (f"/webhooks/agora/{A.app_id}", joined, A.webhook_secret),  # mislabelled
                    (f"/webhooks/agora/{A.app_id}", joined, B.webhook_secret),  # forged
                    ("/metrics", None, ""),
                    ("/livez", None, ""),
                    ("/readyz", None, ""),
                ):
                    pages.append(await fetch(session, base + path, body, secret))
        finally:
            assert await stop_process(worker) == 0, log.read_text()[-3000:]
    env = clean_environment(**settings_env(settings)) | {"CONVOAI_ENV_FILE": ""}
    shown = console("config", env=env)
    outputs = {
        "log": log.read_text(),
        "config": shown.stdout + shown.stderr,
        "ops pages": "\n".join(pages),
    }
    for role in ("results", "state", "dlq"):
        records = await read_topic(kafka_bootstrap, topics[role])
        outputs[role] = "\n".join(
            repr((r.key, r.value, [(name, value) for name, value in r.headers])) for r in records
        )
    assert shown.returncode == 0, shown.stderr
    assert len(outputs["log"].splitlines()) > 10, "the scenario produced log lines to check"
    assert outputs["dlq"], "the poison record was dead-lettered"
    leaks = [
        f"{secret[:6]}… in {where}"
        for where, text in outputs.items()
        for secret in SECRETS
        if secret in text
    ]
    assert leaks == []
