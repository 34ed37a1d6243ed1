"""All configuration, read once from `CONVOAI_*` environment variables.

Nothing else in the worker reads `os.environ`: code receives a frozen `Settings` and tests build
one with `Settings(...)` or `load_settings({...})`. Invalid values fail at startup with the name of
the offending variable and what it accepts, not later in a hot path. `worker.environment` adds
the `.env` file and the `*_FILE` variants of the secrets.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Annotated, Literal, cast, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

import msgspec

from contracts.topics import AGENT_STATE_TOPIC, COMMANDS_TOPIC, DLQ_TOPIC, RESULTS_TOPIC
from worker import deadlines
from worker.environment import (
    ENV_FILE_VARIABLE,
    FILE_SUFFIX,
    SourceError,
    process_environment,
    resolve_files,
)
from worker.redaction import MASK, is_secret_name, mask_url_passwords

PREFIX = "CONVOAI_"

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]
HttpUrl = Annotated[str, msgspec.Meta(pattern=r"^https?://[^/?#\s]+")]


class SettingsError(ValueError):
    """A `CONVOAI_*` variable has a value the worker cannot use."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Worker configuration; field `x` is read from `CONVOAI_X`."""

    # Agora ConvoAI REST API
    api_base_url: HttpUrl = "https://api.agora.io/api/conversational-ai-agent"
    customer_id: str = ""
    customer_secret: str = ""
    auth_token: str = ""  # "agora token=<...>" scheme; used instead of Basic when set
    app_id: str = ""
    allowed_app_ids: str = ""  # comma-separated; empty: any (worker.api.tenants)
    api_credentials_file: str = ""  # JSON {app id: credentials}; serves exactly those App IDs
    # how often the credentials file and its token files are checked for a change; 0 = never
    api_credentials_poll_seconds: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    # regional failover (worker.api.regions): an SDK area's base URLs, or a list, first preferred
    api_region: Literal["", "us", "eu", "ap", "cn"] = ""
    api_base_urls: str = ""  # comma-separated; replaces CONVOAI_API_BASE_URL when set
    api_region_cooldown_seconds: Seconds = 30.0  # a failed base URL is set aside this long
    # request headers a command may add (`api_headers`), comma-separated names; none by default
    api_extra_headers: str = ""
    api_timeout_seconds: Seconds = 15.0
    api_connect_timeout_seconds: Seconds = 5.0
    api_max_connections: Positive = 1000  # as many as commands in flight: none waits for a socket
    api_max_attempts: Positive = 5
    api_backoff_base_seconds: Seconds = 0.2
    api_backoff_max_seconds: Seconds = 10.0
    api_quota_backoff_seconds: Seconds = 5.0  # 422 concurrency/quota: retry much later
    command_timeout_seconds: Seconds = 120.0  # retry budget without expires_at, from its start

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    group_id: str = "convoai-worker"
    group_instance_id: str = ""  # static membership when set
    # how partitions are spread over the group's members (worker.kafka.aio explains the choice)
    kafka_partition_assignor: Literal["sticky", "roundrobin", "range"] = "sticky"
    topic_commands: str = COMMANDS_TOPIC
    topic_results: str = RESULTS_TOPIC
    topic_state: str = AGENT_STATE_TOPIC
    topic_dlq: str = DLQ_TOPIC
    create_topics: bool = True
    # `run` waits this long for the cluster to answer at start (the chart's startup probe)
    startup_timeout_seconds: Seconds = 60.0
    topic_partitions: Positive = 12
    topic_replication_factor: Positive = 1
    # Kafka security (worker.kafka.connection)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal[
        "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "AWS_MSK_IAM"
    ] = "PLAIN"
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = ""
    # OAUTHBEARER: the token is read from this file at every new connection (worker.kafka.oauth)
    kafka_sasl_oauth_token_file: str = ""
    # ... or printed by this command, run again when its token is about to expire
    kafka_sasl_oauth_token_command: str = ""
    kafka_aws_region: str = ""  # AWS_MSK_IAM: the MSK cluster's region (worker.kafka.msk)
    kafka_ssl_cafile: str = ""  # PEM CA bundle; the system CAs when empty
    kafka_ssl_certfile: str = ""  # client certificate (PEM) for mutual TLS
    kafka_ssl_keyfile: str = ""  # its private key (PEM)
    kafka_ssl_key_password: str = ""
    kafka_ssl_check_hostname: bool = True
    # group timing (worker.kafka.timing explains how they relate)
    kafka_session_timeout_seconds: Seconds = 15.0
    kafka_heartbeat_interval_seconds: Seconds = 3.0
    kafka_rebalance_timeout_seconds: Annotated[float, msgspec.Meta(ge=3)] = 30.0
    # largest record the worker produces (the broker's default message.max.bytes is ~1 MiB)
    max_record_bytes: Annotated[int, msgspec.Meta(ge=65_536)] = 1_000_000
    max_result_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 262_144  # result `data` budget
    # how long a result may wait for others to share its produce request (Kafka's default since
    # 4.0); 0 sends it as soon as the broker is free (worker.kafka.aio): less latency at low
    # load, more produce requests and CPU per result, for the worker and the broker, at high
    producer_linger_ms: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 5
    max_list_pages: Positive = 20  # pages one list or turns command may read (its `pages`)
    offset_metadata_max_bytes: Annotated[int, msgspec.Meta(ge=64)] = 4096  # broker default

    # worker processes in this pod, each a member of the group, under one parent that serves the
    # ops port (worker.processes); 1: the worker is the process itself, no parent
    processes: Positive = 1

    # pipeline
    max_in_flight: Positive = 1000
    partition_buffer: Positive = 2000  # records buffered per partition before it is paused
    partition_resume_ratio: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.5
    # bytes of consumed, unfinished records over all partitions; a record costs about 3.5 times
    # its size while its command runs (decoded, and the request body): sized for a 512 MiB pod
    buffer_max_bytes: Annotated[int, msgspec.Meta(ge=1_048_576)] = 67_108_864
    # how long a new partition may wait for its committed position and the dedupe catch-up
    partition_open_timeout_seconds: Seconds = 60.0
    drain_grace_seconds: Seconds = 25.0
    dedupe_capacity: Positive = 100_000  # completed command ids remembered per worker
    dlq_redact_secrets: bool = False  # mask secret fields in dead letters (worker.dlq_redaction)

    # operations surface
    http_host: str = "0.0.0.0"  # noqa: S104 - the metrics/health port must be reachable in a pod
    http_port: Port = 8080
    webhook_secret: str = ""  # NCS secret of a one-App-ID worker (worker.api.tenants)
    webhook_max_body_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 1_048_576
    webhook_max_concurrent: Positive = 32  # callbacks received at once; 503 beyond
    # a connection must deliver a request head within this long of opening (or of its previous
    # response, as an idle keep-alive connection): slow and half-open clients are closed
    http_header_timeout_seconds: Seconds = 5.0
    stall_timeout_seconds: Seconds = 300.0  # /livez: lag, no progress (> a command's budget)
    loop_block_seconds: Seconds = 5.0  # /livez fails when the event loop lags more than this
    reconcile_interval_seconds: Annotated[float, msgspec.Meta(ge=0)] = 0.0  # 0 = off
    # agents that stopped are forgotten (tombstoned on the state topic) this long after
    state_retention_seconds: Seconds = 86_400.0

    # OpenTelemetry tracing (the otel extra; exported as the OTEL_* variables say)
    tracing: bool = False

    # logging
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def __post_init__(self) -> None:
        """Reject combinations no single field's constraint can express."""
        if bool(self.customer_id) != bool(self.customer_secret):
            raise ValueError(
                "CONVOAI_CUSTOMER_ID and CONVOAI_CUSTOMER_SECRET go together (HTTP Basic): "
                "set both, or neither"
            )
        if self.kafka_heartbeat_interval_seconds * 3 > self.kafka_session_timeout_seconds:
            raise ValueError(
                "CONVOAI_KAFKA_HEARTBEAT_INTERVAL_SECONDS must be at most a third of "
                "CONVOAI_KAFKA_SESSION_TIMEOUT_SECONDS"
            )
        timing = deadlines.problem(
            self.kafka_rebalance_timeout_seconds, self.kafka_heartbeat_interval_seconds
        )
        if timing is not None:
            raise ValueError(timing)
        if self.max_result_bytes > self.max_record_bytes // 2:
            raise ValueError(
                "CONVOAI_MAX_RESULT_BYTES must be at most half of CONVOAI_MAX_RECORD_BYTES"
            )

    def redacted(self) -> dict[str, object]:
        """The settings as a dict with secrets masked (credentials, and passwords in URLs such
        as `CONVOAI_API_BASE_URL`), safe to log and to print."""
        values = msgspec.structs.asdict(self)
        for name, value in values.items():
            if value and (name in SECRET_FIELDS or is_secret_name(name)):
                values[name] = MASK
            elif isinstance(value, str):
                values[name] = mask_url_passwords(value)
        return values


SECRET_FIELDS = (
    "customer_id",
    "customer_secret",
    "auth_token",
    "webhook_secret",
    "kafka_sasl_password",
    "kafka_ssl_key_password",
)
"""Credentials: masked in logs and `config`, and readable from a file (`CONVOAI_<NAME>_FILE`)."""

# CONVOAI_* variables that are not settings but are still expected in an environment.
OTHER_VARIABLES = frozenset(
    {
        ENV_FILE_VARIABLE,
        "CONVOAI_TOOLS_CACHE",  # scripts/go-tool: where helm and promtool are cached
    }
)
REAL_API_DOMAIN = "agora.io"


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    flags: Mapping[str, str] | None = None,
    **overrides: object,
) -> Settings:
    """Build `Settings` from `CONVOAI_*` variables, then apply explicit overrides (CLI flags).

    `environ=None` reads the process environment over the optional `.env` file. `flags` maps an
    overridden field to the flag that set it, so that an error names what the user typed.
    """
    env = _environment(environ)
    raw: dict[str, object] = {
        field.name: env[variable_name(field.name)]
        for field in _FIELDS
        if env.get(variable_name(field.name))
    }
    raw.update({k: v for k, v in overrides.items() if v is not None})
    origins = {name: (flags or {}).get(name, variable_name(name)) for name in raw}
    raw = {name: _canonical_choice(name, value) for name, value in raw.items()}
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_explain(str(exc), raw, origins)) from None


def variable_name(field: str) -> str:
    """The environment variable of a settings field: `http_port` -> `CONVOAI_HTTP_PORT`."""
    return PREFIX + field.upper()


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each `CONVOAI_*` variable that is no setting (a typo is otherwise ignored)."""
    env = _environment(environ, resolve=False)
    known = {variable_name(field.name) for field in _FIELDS}
    known |= {variable_name(name) + FILE_SUFFIX for name in SECRET_FIELDS} | OTHER_VARIABLES
    warnings = []
    for name in sorted(env):
        if name.startswith(PREFIX) and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
            hint = f"; did you mean {close[0]}?" if close else ""
            warnings.append(f"{name} is not a setting and is ignored{hint}")
    return warnings


def credentials_warning(settings: Settings) -> str | None:
    """A warning when the real ConvoAI API would be called without any credentials."""
    host = urlsplit(settings.api_base_url).hostname or ""
    real = host == REAL_API_DOMAIN or host.endswith("." + REAL_API_DOMAIN)
    signed = settings.customer_id or settings.auth_token or settings.api_credentials_file
    if not real or signed:
        return None
    return (
        f"{variable_name('api_base_url')} is the real API ({host}) but no credentials are set: "
        "set CONVOAI_CUSTOMER_ID and CONVOAI_CUSTOMER_SECRET (or CONVOAI_AUTH_TOKEN), "
        "or their *_FILE variants; every request will be refused with 401"
    )


_FIELDS = msgspec.structs.fields(Settings)
_TYPES = {
    field.name: field.type
    for field in cast(msgspec.inspect.StructType, msgspec.inspect.type_info(Settings)).fields
}
_DESCRIBED = {
    "api_base_url": "an http(s) URL such as https://api.agora.io/api/conversational-ai-agent",
}
_CHOICES = {
    name: get_args(hint)
    for name, hint in get_type_hints(Settings).items()
    if get_origin(hint) is Literal
}


def _environment(environ: Mapping[str, str] | None, *, resolve: bool = True) -> Mapping[str, str]:
    try:
        env = process_environment(environ)
        return resolve_files(env, PREFIX, SECRET_FIELDS) if resolve else env
    except SourceError as error:
        raise SettingsError(str(error)) from None


def _canonical_choice(name: str, value: object) -> object:
    """Enum values are matched without regard to case (`debug` is `DEBUG`)."""
    if isinstance(value, str):
        for choice in _CHOICES.get(name, ()):
            if isinstance(choice, str) and choice.casefold() == value.casefold():
                return choice
    return value


def _explain(message: str, raw: Mapping[str, object], origins: Mapping[str, str]) -> str:
    """msgspec's `... - at `$.http_port`` as "CONVOAI_HTTP_PORT=abc: expected an integer ..."."""
    _, sep, path = message.rpartition(" - at `$.")
    if not sep:
        return message  # a rule across fields; its message names the variables
    name = path.rstrip("`")
    return f"{origins.get(name, variable_name(name))}={raw.get(name)!s}: expected {_allowed(name)}"


def _allowed(name: str) -> str:
    """What a field accepts, in words."""
    if name in _DESCRIBED:
        return _DESCRIBED[name]
    if name in _CHOICES:
        return "one of " + ", ".join(str(v) for v in _CHOICES[name]) + " (any case)"
    kind = _TYPES[name]
    if isinstance(kind, msgspec.inspect.BoolType):
        return "true or false (or 1 or 0)"
    if isinstance(kind, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        noun = "an integer" if isinstance(kind, msgspec.inspect.IntType) else "a number"
        bounds = [
            f"{symbol} {limit:g}"
            for symbol, limit in ((">", kind.gt), (">=", kind.ge), ("<", kind.lt), ("<=", kind.le))
            if limit is not None
        ]
        return noun + (" " + " and ".join(bounds) if bounds else "")
    return "a string"
