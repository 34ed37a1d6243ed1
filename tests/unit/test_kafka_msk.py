"""AWS MSK IAM: the settings build a provider of tokens signed by AWS's own signer, and aiokafka
sends them as OAUTHBEARER. No MSK here: the tokens are checked for what MSK verifies."""

from __future__ import annotations

import base64
import sys
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiokafka.conn import OAuthAuthenticator

from worker.kafka.connection import client_options
from worker.kafka.msk import MskIamToken
from worker.kafka.oauth import TokenUnavailableError
from worker.settings import Settings, SettingsError

ACCESS_KEY = "AKIAEXAMPLE0123456789"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
MSK: dict[str, Any] = {
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "AWS_MSK_IAM",
    "kafka_aws_region": "eu-west-1",
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """AWS's credential chain with nothing but what a test sets: no files, no instance role."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    return monkeypatch


def signed_url(token: str) -> tuple[str, dict[str, list[str]]]:
    """The presigned request a token carries: host and query."""
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    parts = urlsplit(url)
    return parts.netloc, parse_qs(parts.query)


async def test_the_worker_sends_a_token_signed_for_the_clusters_region(
    aws: pytest.MonkeyPatch,
) -> None:
    """What MSK checks: kafka-cluster:Connect, signed for kafka-cluster in the cluster's region
    with the process's credentials, valid 15 minutes; the secret key itself never travels."""
    aws.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    aws.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    options = client_options(Settings(**MSK))
    assert options["sasl_mechanism"] == "OAUTHBEARER"
    provider = options["sasl_oauth_token_provider"]
    first, _ = await OAuthAuthenticator(sasl_oauth_token_provider=provider).step(None)
    token = first.removeprefix(b"n,,\x01auth=Bearer ").removesuffix(b"\x01\x01").decode()
    host, query = signed_url(token)
    assert host == "kafka.eu-west-1.amazonaws.com"
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Credential"][0].startswith(f"{ACCESS_KEY}/")
    assert query["X-Amz-Credential"][0].endswith("/eu-west-1/kafka-cluster/aws4_request")
    assert query["X-Amz-Expires"] == ["900"]
    assert SECRET_KEY not in first.decode()
    assert await provider.token() == token  # kept while it is valid


async def test_without_aws_credentials_no_token_and_the_region_is_named(
    aws: pytest.MonkeyPatch,
) -> None:
    aws.delenv("AWS_ACCESS_KEY_ID", raising=False)
    aws.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    provider = client_options(Settings(**MSK))["sasl_oauth_token_provider"]
    with pytest.raises(TokenUnavailableError, match="AWS_MSK_IAM in eu-west-1: cannot sign"):
        await provider.token()


async def test_a_token_is_signed_again_a_minute_before_it_expires() -> None:
    signed: list[str] = []
    now = [1_800_000_000.0]

    def sign(region: str) -> tuple[str, int]:
        signed.append(region)
        return f"token-{len(signed)}", int((now[0] + 900) * 1000)

    provider = MskIamToken("us-east-1", sign, clock=lambda: now[0])
    assert await provider.token() == "token-1"
    now[0] += 900 - 61
    assert await provider.token() == "token-1"
    now[0] += 2
    assert await provider.token() == "token-2"
    assert signed == ["us-east-1", "us-east-1"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kafka_aws_region": ""}, "needs CONVOAI_KAFKA_AWS_REGION"),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT"},
            "needs CONVOAI_KAFKA_SECURITY_PROTOCOL=SASL_SSL",
        ),
    ],
)
def test_settings_msk_cannot_serve_are_refused_at_start(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        client_options(Settings(**{**MSK, **values}))


def test_without_the_extra_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "aws_msk_iam_sasl_signer", None)  # import fails
    with pytest.raises(SettingsError, match=r"pip install 'convoai-worker\[msk\]'"):
        client_options(Settings(**MSK))
