"""Secure defaults: the App IDs served are closed unless configured, per-App-ID memory is
bounded, and a Kafka connection that exposes credentials is called out at start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from contracts import AgentList
from tests.emulator.harness import answering_ok, serving
from tests.security.tenants import A, B, credentials_file
from worker.api.client import ConvoAIClient
from worker.api.requests import request_for
from worker.api.tenants import Tenants
from worker.commands.configured import load
from worker.settings import Settings


def test_without_a_credentials_file_only_the_default_app_id_is_served() -> None:
    """No allowlist is no longer "any App ID": only `CONVOAI_APP_ID`, and none without it."""
    settings = Settings(app_id=A.app_id, customer_id="id", customer_secret="secret")
    tenants = Tenants.from_settings(settings)
    assert tenants.served == {A.app_id}
    assert tenants.refusal(B.app_id) is not None
    assert tenants.authorization(B.app_id) is None
    nothing = Tenants.from_settings(Settings(customer_id="id", customer_secret="secret"))
    assert nothing.served == frozenset()
    assert nothing.refusal(A.app_id) == (
        "this worker serves no App ID: set CONVOAI_APP_ID, CONVOAI_ALLOWED_APP_IDS or "
        "CONVOAI_API_CREDENTIALS_FILE"
    )


def test_with_a_credentials_file_only_its_app_ids_are_served(tmp_path: Path) -> None:
    """The default App ID is not served when the file has no entry for it."""
    settings = Settings(app_id="app-default", api_credentials_file=str(credentials_file(tmp_path)))
    tenants = Tenants.from_settings(settings)
    assert tenants.served == {A.app_id, B.app_id}
    assert tenants.refusal("app-default") is not None


async def test_the_per_app_id_header_cache_holds_only_app_ids_served() -> None:
    """Requests for a thousand App IDs (say, from `exec`) leave no header set behind each."""

    async with serving(answering_ok()) as origin:
        settings = Settings(
            api_base_url=origin, app_id=A.app_id, customer_id="id", customer_secret="secret"
        )
        async with ConvoAIClient(settings) as client:
            for n in range(1000):
                app_id = f"app-{n}" if n % 2 else A.app_id
                path = f"/v2/projects/{app_id}/agents"
                await client.send(request_for(AgentList, path, {}, app_id=app_id))
            assert len(client._headers) <= 2  # one per content type of the one App ID served


@pytest.mark.parametrize(
    ("variables", "warning"),
    [
        (
            {"SECURITY_PROTOCOL": "SASL_PLAINTEXT", "SASL_MECHANISM": "PLAIN"},
            "SASL PLAIN over SASL_PLAINTEXT sends the Kafka password in clear text",
        ),
        (
            {"SECURITY_PROTOCOL": "SASL_PLAINTEXT", "SASL_MECHANISM": "OAUTHBEARER"},
            "SASL OAUTHBEARER over SASL_PLAINTEXT sends the Kafka bearer token",
        ),
        (
            {"SECURITY_PROTOCOL": "SSL", "SSL_CHECK_HOSTNAME": "false"},
            "CONVOAI_KAFKA_SSL_CHECK_HOSTNAME=false",
        ),
        (
            {"SECURITY_PROTOCOL": "SASL_SSL", "SSL_CHECK_HOSTNAME": "false"},
            "CONVOAI_KAFKA_SSL_CHECK_HOSTNAME=false",
        ),
        ({"SECURITY_PROTOCOL": "SASL_PLAINTEXT", "SASL_MECHANISM": "SCRAM-SHA-512"}, None),
        ({"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "PLAIN"}, None),
        ({"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "OAUTHBEARER"}, None),
        ({"SECURITY_PROTOCOL": "PLAINTEXT", "SSL_CHECK_HOSTNAME": "false"}, None),
    ],
)
def test_a_kafka_connection_that_exposes_credentials_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], warning: str | None
) -> None:
    """The warnings every command prints (and `run` logs) at start."""
    for name in [n for n in os.environ if n.startswith("CONVOAI_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CONVOAI_ENV_FILE", "")
    if "SASL" in variables["SECURITY_PROTOCOL"]:  # SASL needs its credentials to load at all
        credentials = {"SASL_USERNAME": "worker", "SASL_PASSWORD": "kafka-password"}
        if variables.get("SASL_MECHANISM") == "OAUTHBEARER":
            credentials = {"SASL_OAUTH_TOKEN_FILE": "/var/run/secrets/kafka/token"}
        variables = {**credentials, **variables}
    for name, value in variables.items():
        monkeypatch.setenv(f"CONVOAI_KAFKA_{name}", value)
    _, warnings = load(api=False)
    kafka = [w for w in warnings if "KAFKA" in w or "Kafka" in w]
    if warning is None:
        assert kafka == []
    else:
        (only,) = kafka
        assert warning in only
