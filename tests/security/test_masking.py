"""Secrets masked in the logs and in `config`: by field name (any case and spelling, the
harmless names excepted), by value (escaped or not, the credentials file's too), in URLs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tests.logs import logging_into_buffer
from tests.security.tenants import A, B, credentials_file
from worker.api.tenants import Tenants
from worker.logging import mask_values
from worker.redaction import HARMLESS_NAMES, is_secret_name
from worker.settings import Settings

CUSTOMER_SECRET = 'c-secret "quoted" \\ slashed / ünïcode'
SASL_PASSWORD = "kafka-sasl-password-42"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """JSON logging into a buffer, with two configured secrets; restored afterwards."""
    settings = Settings(
        customer_id="customer-id-7",
        customer_secret=CUSTOMER_SECRET,
        kafka_sasl_password=SASL_PASSWORD,
        log_format="json",
    )
    with logging_into_buffer(settings) as buffer:
        yield buffer


@pytest.mark.parametrize(
    "name",
    [
        "apiKey",
        "Api-Key",
        "X-API-KEY",
        "key",
        "secret",
        "clientSecret",
        "access_token",
        "X-Auth-Token",
        "rtcToken",
        "password",
        "DB_PASSWORD",
        "credentials",
        "Authorization",
        "proxy-authorization",
        "encryption_key",
        "adc_credentials_string",
        "Set-Cookie",
    ],
)
def test_names_that_hold_a_secret_are_masked_in_any_spelling(name: str) -> None:
    """The patterns match in any case, with dashes, underscores or camel case."""
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        *sorted(HARMLESS_NAMES),
        "maxTokens",
        "Interruption-Keywords",
        "kafka_ssl_keyfile",
        "api_credentials_file",
        "agent_id",
        "channel",
        "monitor",
    ],
)
def test_harmless_names_are_kept(name: str) -> None:
    """Token counts, keywords, record keys and paths to secrets are not secrets."""
    assert not is_secret_name(name)


def test_every_log_line_masks_secret_fields_and_values(stream: io.StringIO) -> None:
    """Fields by name, nested or not; configured values raw, JSON-escaped or in a repr; the
    passwords of URLs; the Basic value made of the customer pair; the credentials file's values
    once read."""
    log = structlog.get_logger("t")
    log.info(
        "request",
        headers={"Authorization": "Basic abc", "X-Api-Key": "k-123"},
        properties={"llm": {"apiKey": "sk-live"}, "tts": {"params": {"key": "tts-k"}}},
        agent={"rtc_token": "007-token"},
        max_tokens=1024,
    )
    log.warning("failed", detail=f"settings {CUSTOMER_SECRET!r} refused")
    log.warning("failed", url="https://worker:hunter2@kafka.internal:9093/x")
    logging.getLogger("aiokafka.conn").error("SASL as %s failed", SASL_PASSWORD)
    log.error("request refused", authorization="Basic Y3VzdG9tZXItaWQtNzpjLXNlY3JldA==")
    text = stream.getvalue()
    for leaked in ("Basic abc", "k-123", "sk-live", "tts-k", "007-token", "hunter2"):
        assert leaked not in text
    for secret in (CUSTOMER_SECRET, SASL_PASSWORD):
        assert secret not in text
        assert json.dumps(secret)[1:-1] not in text
        assert repr(secret)[1:-1] not in text
    first = json.loads(text.splitlines()[0])
    assert first["properties"] == {"llm": {"apiKey": "***"}, "tts": {"params": {"key": "***"}}}
    assert first["max_tokens"] == 1024
    assert "https://worker:***@kafka.internal:9093/x" in text


def test_the_credentials_files_values_are_masked_once_read(
    stream: io.StringIO, tmp_path: Path
) -> None:
    """Every value of the file, whatever field of a log line it lands in."""
    tenants = Tenants.from_settings(Settings(api_credentials_file=str(credentials_file(tmp_path))))
    mask_values(tenants.secrets)
    log = structlog.get_logger("t")
    for tenant in (A, B):
        log.warning(
            "api_refused",
            detail=f"{tenant.customer_id}:{tenant.customer_secret} / {tenant.webhook_secret}",
        )
    text = stream.getvalue()
    for tenant in (A, B):
        for value in (tenant.customer_id, tenant.customer_secret, tenant.webhook_secret):
            assert value not in text


def test_config_output_masks_credentials_and_url_passwords() -> None:
    """`convoai-worker config` prints the redacted settings."""
    settings = Settings(
        customer_id="customer",
        customer_secret="s3cret-value",
        kafka_ssl_key_password="pem-pass-1",
        api_base_url="https://user:url-pass-9@proxy.invalid/api",
        kafka_ssl_keyfile="/etc/kafka/user.key",
    )
    shown = json.dumps(settings.redacted())
    for leaked in ("s3cret-value", "pem-pass-1", "url-pass-9"):
        assert leaked not in shown
    assert "/etc/kafka/user.key" in shown  # where the key is, not the key
