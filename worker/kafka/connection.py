"""How every Kafka client of the worker connects: bootstrap servers and security.

One function builds the options for all clients (consumer, producer, admin, readers, and the
`send` and `tail` commands), so TLS and SASL are configured once and apply everywhere.
Supported: PLAINTEXT, SSL (with a client certificate for mutual TLS), SASL_PLAINTEXT and
SASL_SSL with PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER (a token from a file or a
command, `worker.kafka.oauth`) or AWS_MSK_IAM (OAUTHBEARER with tokens signed by AWS
credentials, `worker.kafka.msk`). Each client gets its own token provider. Configuration
mistakes (a missing file, a certificate without its key, SASL without a password or a token
source) fail at startup naming the variable.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import structlog
from aiokafka.abc import AbstractTokenProvider
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

from worker import deadlines
from worker.kafka.msk import msk_token
from worker.kafka.oauth import (
    TOKEN_COMMAND,
    TOKEN_FILE,
    CommandToken,
    FileToken,
    TokenUnavailableError,
    jwt_expiry,
)
from worker.settings import Settings, SettingsError

log = structlog.get_logger(__name__)

STOP_SECONDS = deadlines.CLIENT_STOP_SECONDS  # shutdown_bound counts on it
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
# mechanisms that send the credential itself, readable without TLS
CLEAR_TEXT_MECHANISMS = frozenset({"PLAIN", "OAUTHBEARER"})


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client of the worker."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": protocol,
    }
    if protocol in TLS_PROTOCOLS:
        options["ssl_context"] = tls_context(settings)
    if protocol in SASL_PROTOCOLS:
        options.update(_sasl_options(settings))
    return options


def _sasl_options(settings: Settings) -> dict[str, Any]:
    mechanism = settings.kafka_sasl_mechanism
    if mechanism == "AWS_MSK_IAM":
        return {"sasl_mechanism": "OAUTHBEARER", "sasl_oauth_token_provider": msk_token(settings)}
    if mechanism == "OAUTHBEARER":
        return {"sasl_mechanism": mechanism, "sasl_oauth_token_provider": _token_source(settings)}
    if not settings.kafka_sasl_username or not settings.kafka_sasl_password:
        raise SettingsError(
            f"CONVOAI_KAFKA_SASL_MECHANISM={mechanism} needs CONVOAI_KAFKA_SASL_USERNAME "
            "and CONVOAI_KAFKA_SASL_PASSWORD (or CONVOAI_KAFKA_SASL_PASSWORD_FILE)"
        )
    return {
        "sasl_mechanism": mechanism,
        "sasl_plain_username": settings.kafka_sasl_username,
        "sasl_plain_password": settings.kafka_sasl_password,
    }


def _token_source(settings: Settings) -> FileToken | CommandToken:
    path, command = settings.kafka_sasl_oauth_token_file, settings.kafka_sasl_oauth_token_command
    if bool(path) == bool(command):
        raise SettingsError(
            f"CONVOAI_KAFKA_SASL_MECHANISM=OAUTHBEARER needs one of {TOKEN_FILE} and "
            f"{TOKEN_COMMAND}, not {'both' if path else 'neither'}"
        )
    return FileToken(path) if path else CommandToken(command)


def exposure_warnings(settings: Settings) -> list[str]:
    """Warnings for settings that connect but expose what they should protect: a PLAIN
    password over a connection without TLS, or TLS that accepts any certificate of its CA."""
    protocol = settings.kafka_security_protocol
    warnings = []
    mechanism = settings.kafka_sasl_mechanism
    if protocol == "SASL_PLAINTEXT" and mechanism in CLEAR_TEXT_MECHANISMS:
        credential = (
            "password" if mechanism == "PLAIN" else "bearer token (replayable until it expires)"
        )
        warnings.append(
            f"SASL {mechanism} over SASL_PLAINTEXT sends the Kafka {credential} in clear "
            "text: use CONVOAI_KAFKA_SECURITY_PROTOCOL=SASL_SSL"
            + (", or a SCRAM mechanism" if mechanism == "PLAIN" else "")
        )
    if protocol in TLS_PROTOCOLS and not settings.kafka_ssl_check_hostname:
        warnings.append(
            "CONVOAI_KAFKA_SSL_CHECK_HOSTNAME=false: any certificate the CA signed is accepted "
            "for any broker, so whoever holds one can read and change the worker's traffic"
        )
    return warnings


def tls_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context: system CAs or `CONVOAI_KAFKA_SSL_CAFILE`, plus a client certificate."""
    certfile, keyfile = settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile
    if bool(certfile) != bool(keyfile):
        raise SettingsError(
            "CONVOAI_KAFKA_SSL_CERTFILE and CONVOAI_KAFKA_SSL_KEYFILE go together (mutual TLS)"
        )
    for variable, path in (
        ("CONVOAI_KAFKA_SSL_CAFILE", settings.kafka_ssl_cafile),
        ("CONVOAI_KAFKA_SSL_CERTFILE", certfile),
        ("CONVOAI_KAFKA_SSL_KEYFILE", keyfile),
    ):
        if path and not Path(path).is_file():
            raise SettingsError(f"{variable}: no such file: {path}")
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=settings.kafka_ssl_cafile or None,
            certfile=certfile or None,
            keyfile=keyfile or None,
            password=settings.kafka_ssl_key_password or None,
        )
    except (ssl.SSLError, ValueError) as error:
        raise SettingsError(f"CONVOAI_KAFKA_SSL_*: cannot use the TLS files: {error}") from error
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


class Diagnosis(NamedTuple):
    """Why the cluster cannot be used, and whether waiting could change that."""

    message: str
    refused: bool  # the broker answered and refused these settings (TLS, credentials)


async def diagnose(settings: Settings) -> Diagnosis:
    """Why the first bootstrap server refuses this worker, in one line for the operator.

    aiokafka reports an unreachable cluster as "Unable to bootstrap", whatever the cause; this
    connects once more itself to name it (refused, TLS, wrong credentials) and the settings
    involved — never the password.
    """
    address = settings.kafka_bootstrap.split(",", 1)[0].strip()
    host, _, port = address.rpartition(":")
    options = client_options(settings)
    options.pop("bootstrap_servers")
    who = _describe_security(settings)
    try:
        connection = await create_conn(host, int(port), request_timeout_ms=10_000, **options)
    except (OSError, KafkaError, ssl.SSLError, ValueError) as error:
        cause, refused = _cause(error, settings)
        return Diagnosis(f"cannot connect to Kafka at {address} ({who}): {cause}", refused)
    connection.close()
    message = f"Kafka at {address} ({who}) accepts connections; the cluster itself did not answer"
    if "sasl_oauth_token_provider" in options:
        message += await _token_doubt(options["sasl_oauth_token_provider"], settings)
    return Diagnosis(message, refused=False)


async def _token_doubt(provider: AbstractTokenProvider, settings: Settings) -> str:
    """aiokafka takes a broker's refusal of an OAUTHBEARER token for success (the refusal is a
    challenge it does not read), and the broker then drops the connection: to the client a
    refused token looks like a cluster that does not answer. Say so, and what is known."""
    expiry = jwt_expiry(await provider.token())
    if expiry is not None and expiry <= time.time():
        when = datetime.fromtimestamp(expiry, UTC).isoformat(timespec="seconds")
        return f", or refused the token, which expired at {when}"
    return f", or refused the token ({REFUSED_HINTS[settings.kafka_sasl_mechanism]})"


def _describe_security(settings: Settings) -> str:
    protocol = settings.kafka_security_protocol
    parts: list[str] = [protocol]
    if protocol in SASL_PROTOCOLS:
        parts.append(_describe_sasl(settings))
    if protocol in TLS_PROTOCOLS and settings.kafka_ssl_certfile:
        parts.append("client certificate")
    return ", ".join(parts)


def _describe_sasl(settings: Settings) -> str:
    """The mechanism and whose credential it presents (never the credential)."""
    mechanism = settings.kafka_sasl_mechanism
    if mechanism == "AWS_MSK_IAM":
        return f"AWS_MSK_IAM in {settings.kafka_aws_region}"
    if mechanism == "OAUTHBEARER":
        path = settings.kafka_sasl_oauth_token_file
        return f"OAUTHBEARER, token from {path}" if path else "OAUTHBEARER, token from a command"
    return f"{mechanism} as {settings.kafka_sasl_username!r}"


# what to check when the broker refuses the credential, per mechanism
REFUSED_HINTS = {
    "OAUTHBEARER": f"is the token from {TOKEN_FILE} or {TOKEN_COMMAND} expired, or issued for "
    "another audience or issuer than the brokers accept?",
    "AWS_MSK_IAM": "may the AWS identity kafka-cluster:Connect to this cluster, and is "
    "CONVOAI_KAFKA_AWS_REGION its region?",
}


def _cause(error: BaseException, settings: Settings) -> tuple[str, bool]:
    """The error in words, and whether it is the broker refusing these settings."""
    name = type(error).__name__
    text = str(error) if str(error).startswith(name) else f"{name}: {error}"
    if isinstance(error, ssl.SSLCertVerificationError):
        hint = "is CONVOAI_KAFKA_SSL_CAFILE the CA that signed the broker's certificate?"
        return f"{text} ({hint})", True
    if isinstance(error, TokenUnavailableError):
        return str(error), False  # a token file or endpoint may yet come up
    if "SaslAuthenticationFailed" in text or "Authentication failed" in text:
        hint = REFUSED_HINTS.get(
            settings.kafka_sasl_mechanism,
            "check CONVOAI_KAFKA_SASL_USERNAME, _PASSWORD and _MECHANISM",
        )
        return f"{text} ({hint})", True
    if settings.kafka_security_protocol in TLS_PROTOCOLS and "closed" in text:
        return (
            f"{text} (the broker ended the TLS session: does it require a client certificate, "
            "CONVOAI_KAFKA_SSL_CERTFILE/KEYFILE, or another security protocol?)"
        ), True
    return text, False


async def stop_within(stop: Awaitable[None], client: str) -> None:
    """Await a client's `stop()`, but not for longer than `STOP_SECONDS`.

    Under uvloop, closing a TLS connection waits for the broker's close_notify, which a broker
    with a fetch in flight may never send: `stop()` then takes the TLS shutdown timeout (30 s).
    Everything that matters is acknowledged before the worker stops its clients, so it does not
    wait for that.

    aiokafka's consumer stop cancels its own fetch requests and awaits them; one that was
    waiting out the retry backoff after a dropped connection ends with CancelledError, which
    `stop()` lets escape (aiokafka issue 647). That cancellation is the client's, not the
    caller's: the stop is over as far as the worker is concerned, so it is logged and the
    shutdown goes on instead of ending as a failure (exit code 1). A cancellation of the
    caller's task still propagates.
    """
    try:
        async with asyncio.timeout(STOP_SECONDS):
            await stop
    except TimeoutError:
        log.warning("kafka_client_stop_slow", client=client, waited_seconds=STOP_SECONDS)
    except asyncio.CancelledError:
        caller = asyncio.current_task()
        if caller is None or caller.cancelling():
            raise
        log.warning("kafka_client_stop_cancelled", client=client)
