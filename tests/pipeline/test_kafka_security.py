"""TLS, mutual TLS and SASL (PLAIN, SCRAM) against a secured broker: run, send and tail."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.emulator.harness import RunningEmulator
from tests.pipeline.harness import (
    make_settings,
    settings_env,
    spawn_worker,
    stop_process,
    wait_ready,
)
from tests.pipeline.secure_broker import PASSWORD, USERNAME, SecureBroker, running_secure_broker

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

COMMANDS = [
    {"command": "agent.get", "id": f"sec-{i}", "agent_id": f"sec-agent-{i}"} for i in range(3)
]


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """One secured broker for the module."""
    with running_secure_broker(tmp_path_factory.mktemp("secure-kafka")) as broker:
        yield broker


def security(broker: SecureBroker, how: str, **overrides: Any) -> dict[str, Any]:
    """Settings that reach `broker` with `how`: a SASL mechanism, or "mtls"."""
    if how == "mtls":
        values: dict[str, Any] = {
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


@pytest.mark.parametrize("how", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "mtls"])
async def test_right_credentials_work_end_to_end(
    secure_broker: SecureBroker, emulator: RunningEmulator, tmp_path: Path, how: str
) -> None:
    """`run`, `send` and `tail` all connect with the configured security."""
    name = how.lower().replace("-", "")
    values = security(secure_broker, how, create_topics=True)
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


@pytest.mark.parametrize(
    ("how", "overrides", "expected"),
    [
        ("SCRAM-SHA-256", {"kafka_sasl_password": "not-the-password"}, "SaslAuthenticationFailed"),
        ("PLAIN", {"kafka_sasl_username": "mallory"}, "SaslAuthenticationFailed"),
        ("mtls", {"kafka_ssl_certfile": "", "kafka_ssl_keyfile": ""}, "client certificate"),
        ("SCRAM-SHA-512", {"kafka_ssl_cafile": ""}, "CERTIFICATE_VERIFY_FAILED"),
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
    values = security(secure_broker, how, create_topics=True, **overrides)
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
