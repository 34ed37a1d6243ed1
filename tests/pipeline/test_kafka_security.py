"""TLS, mutual TLS and SASL (PLAIN, SCRAM, OAUTHBEARER) against a secured broker: run, send
and tail."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.emulator.harness import RunningEmulator
from tests.pipeline.harness import (
    make_settings,
    produce,
    settings_env,
    spawn_worker,
    stop_process,
    wait_for_results,
    wait_ready,
)
from tests.pipeline.secure_broker import PASSWORD, USERNAME, SecureBroker, running_secure_broker
from tests.tokens import unsecured_jws

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

COMMANDS = [
    {"command": "agent.get", "id": f"sec-{i}", "agent_id": f"sec-agent-{i}"} for i in range(3)
]


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """One secured broker for the module."""
    with running_secure_broker(tmp_path_factory.mktemp("secure-kafka")) as broker:
        yield broker


def token_file(directory: Path, lifetime: float) -> Path:
    """A file holding a token for the worker's principal that expires in `lifetime` seconds."""
    path = directory / "kafka-token"
    renewed = directory / "kafka-token.new"
    renewed.write_text(unsecured_jws("convoai-worker", time.time() + lifetime))
    renewed.replace(path)  # atomically, as the kubelet renews a projected token
    return path


def security(broker: SecureBroker, how: str, directory: Path, **overrides: Any) -> dict[str, Any]:
    """Settings that reach `broker` with `how`: a SASL mechanism, "mtls", or "OAUTHBEARER" with
    its token in a file or printed by a command ("OAUTHBEARER-command"), kept in `directory`."""
    if how.startswith("OAUTHBEARER"):
        path = token_file(directory, lifetime=3600)
        source = (
            {"kafka_sasl_oauth_token_command": f"cat {path}"}
            if how.endswith("command")
            else {"kafka_sasl_oauth_token_file": str(path)}
        )
        values: dict[str, Any] = {
            "kafka_bootstrap": broker.sasl_ssl,
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "OAUTHBEARER",
            **source,
        }
    elif how == "mtls":
        values = {
            "kafka_bootstrap": broker.mutual_tls,
            "kafka_security_protocol": "SSL",
            "kafka_ssl_certfile": str(broker.client_cert),
            "kafka_ssl_keyfile": str(broker.client_key),
        }
    else:
        values = {
            "kafka_bootstrap": broker.sasl_ssl,
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": how,
            "kafka_sasl_username": USERNAME,
            "kafka_sasl_password": PASSWORD,
        }
    return {"kafka_ssl_cafile": str(broker.ca_file), **values, **overrides}


def topics_for(name: str) -> dict[str, str]:
    """Fresh topic names; the worker creates them over the secured listener."""
    return {kind: f"secure.{name}.{kind}" for kind in ("commands", "results", "state", "dlq")}


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the console script with `env`."""
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize(
    "how",
    ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "mtls", "OAUTHBEARER", "OAUTHBEARER-command"],
)
async def test_right_credentials_work_end_to_end(
    secure_broker: SecureBroker, emulator: RunningEmulator, tmp_path: Path, how: str
) -> None:
    """`run`, `send` and `tail` all connect with the configured security."""
    name = how.lower().replace("-", "")
    values = security(secure_broker, how, tmp_path, create_topics=True)
    settings = make_settings(
        values["kafka_bootstrap"], topics_for(name), emulator.api_url, **values
    )
    env = settings_env(settings)
    log = tmp_path / "worker.log"
    worker = spawn_worker(settings, str(log))
    try:
        await wait_ready(settings.http_port)
        lines = tmp_path / "commands.jsonl"
        lines.write_bytes(b"\n".join(msgspec.json.encode(c) for c in COMMANDS) + b"\n")
        sent = await asyncio.to_thread(cli, env, "send", str(lines))
        assert sent.returncode == 0, sent.stderr
        tail_args = [
            "tail",
            "--json",
            "--from-beginning",
            "--max-results",
            "3",
            "--idle-timeout",
            "30",
        ]
        tailed = await asyncio.to_thread(cli, env, *tail_args)
        assert tailed.returncode == 0, tailed.stderr
    finally:
        assert await stop_process(worker, signal.SIGTERM) == 0, log.read_text()[-3000:]
    results = [msgspec.json.decode(line) for line in tailed.stdout.splitlines()]
    assert {r["command_id"] for r in results if r["topic"] == "result"} == {
        c["id"] for c in COMMANDS
    }
    assert PASSWORD not in log.read_text()
    if how.startswith("OAUTHBEARER"):
        assert (tmp_path / "kafka-token").read_text() not in log.read_text()


@pytest.mark.parametrize(
    ("how", "overrides", "expected"),
    [
        ("SCRAM-SHA-256", {"kafka_sasl_password": "not-the-password"}, "SaslAuthenticationFailed"),
        ("PLAIN", {"kafka_sasl_username": "mallory"}, "SaslAuthenticationFailed"),
        ("mtls", {"kafka_ssl_certfile": "", "kafka_ssl_keyfile": ""}, "client certificate"),
        ("SCRAM-SHA-512", {"kafka_ssl_cafile": ""}, "CERTIFICATE_VERIFY_FAILED"),
        # aiokafka cannot tell a refused token from a silent cluster: it waits, then says why
        ("OAUTHBEARER", {"startup_timeout_seconds": 2}, "or refused the token, which expired at"),
    ],
)
async def test_wrong_credentials_fail_at_startup_in_one_line(  # noqa: PLR0917 - fixtures
    secure_broker: SecureBroker,
    emulator: RunningEmulator,
    tmp_path: Path,
    how: str,
    overrides: dict[str, str],
    expected: str,
) -> None:
    """A refused connection ends `run` at once with one line naming the cause, no traceback."""
    values = security(secure_broker, how, tmp_path, create_topics=True, **overrides)
    if how == "OAUTHBEARER":
        token_file(tmp_path, lifetime=-60)
    settings = make_settings(
        values["kafka_bootstrap"], topics_for("refused"), emulator.api_url, **values
    )
    log = tmp_path / "worker.log"
    worker = spawn_worker(settings, str(log))
    for _ in range(300):
        if worker.poll() is not None:
            break
        await asyncio.sleep(0.1)
    else:
        await stop_process(worker, signal.SIGKILL)
        pytest.fail(f"the worker kept running with wrong credentials:\n{log.read_text()[-2000:]}")
    text = log.read_text()
    assert worker.returncode != 0
    cannot_start = [line for line in text.splitlines() if "worker_cannot_start" in line]
    assert len(cannot_start) == 1, text
    assert expected in cannot_start[0]
    assert "Traceback" not in text
    assert PASSWORD not in text


async def test_a_renewed_token_file_keeps_the_worker_serving_past_each_tokens_expiry(
    secure_broker: SecureBroker, emulator: RunningEmulator, tmp_path: Path
) -> None:
    """Tokens live 8 s and the file is renewed every 2 s, as the kubelet renews a projected
    token. The broker drops a connection once its token has expired, so the worker reconnects
    all along with what the file holds then, and keeps finishing commands for four lifetimes
    (the same worker would stall after 8 s if it kept its first token)."""
    values = security(secure_broker, "OAUTHBEARER", tmp_path, create_topics=True)
    topics = topics_for("renewed")
    settings = make_settings(values["kafka_bootstrap"], topics, emulator.api_url, **values)

    async def renew() -> None:
        while True:
            token_file(tmp_path, lifetime=8)
            await asyncio.sleep(2)

    renewing = asyncio.create_task(renew())
    log = tmp_path / "worker.log"
    worker = spawn_worker(settings, str(log))
    try:
        await wait_ready(settings.http_port)
        commands = [
            {"command": "agent.get", "id": f"renewed-{i}", "agent_id": f"renewed-agent-{i}"}
            for i in range(12)
        ]
        await produce(secure_broker.plaintext, topics["commands"], commands, rate=0.4)
        await wait_for_results(
            secure_broker.plaintext, topics["results"], {c["id"] for c in commands}, within=20
        )
    finally:
        renewing.cancel()
        assert await stop_process(worker, signal.SIGTERM) == 0, log.read_text()[-3000:]
    assert (tmp_path / "kafka-token").read_text() not in log.read_text()
