"""All configuration, read once from `CONVOAI_*` environment variables.

Nothing else in the worker reads `os.environ`: code receives a frozen `Settings` and tests build
one with `Settings(...)` or `load_settings({...})`. Invalid values fail at startup with the name of
the offending variable, not later in a hot path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

from contracts.topics import AGENT_STATE_TOPIC, COMMANDS_TOPIC, DLQ_TOPIC, RESULTS_TOPIC

PREFIX = "CONVOAI_"

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]


class SettingsError(ValueError):
    """A `CONVOAI_*` variable has a value the worker cannot use."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Worker configuration; field `x` is read from `CONVOAI_X`."""

    # Agora ConvoAI REST API
    api_base_url: str = "https://api.agora.io/api/conversational-ai-agent"
    customer_id: str = ""
    customer_secret: str = ""
    auth_token: str = ""  # "agora token=<...>" scheme; used instead of Basic when set
    app_id: str = ""
    api_timeout_seconds: Seconds = 15.0
    api_connect_timeout_seconds: Seconds = 5.0
    api_max_connections: Positive = 256
    api_max_attempts: Positive = 5
    api_backoff_base_seconds: Seconds = 0.2
    api_backoff_max_seconds: Seconds = 10.0
    api_quota_backoff_seconds: Seconds = 5.0  # 422 concurrency/quota: retry much later
    command_timeout_seconds: Seconds = 120.0  # retry budget without expires_at, from its start

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    group_id: str = "convoai-worker"
    group_instance_id: str = ""  # static membership when set
    topic_commands: str = COMMANDS_TOPIC
    topic_results: str = RESULTS_TOPIC
    topic_state: str = AGENT_STATE_TOPIC
    topic_dlq: str = DLQ_TOPIC
    create_topics: bool = True
    topic_partitions: Positive = 12
    topic_replication_factor: Positive = 1
    # group timing (worker.kafka.timing explains how they relate)
    kafka_session_timeout_seconds: Seconds = 15.0
    kafka_heartbeat_interval_seconds: Seconds = 3.0
    kafka_rebalance_timeout_seconds: Annotated[float, msgspec.Meta(ge=3)] = 30.0
    # largest record the worker produces (the broker's default message.max.bytes is ~1 MiB)
    max_record_bytes: Annotated[int, msgspec.Meta(ge=65_536)] = 1_000_000
    max_result_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 262_144  # result `data` budget
    offset_metadata_max_bytes: Annotated[int, msgspec.Meta(ge=64)] = 4096  # broker default

    # pipeline
    max_in_flight: Positive = 1000
    partition_buffer: Positive = 2000  # records buffered per partition before it is paused
    partition_resume_ratio: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.5
    drain_grace_seconds: Seconds = 25.0
    dedupe_capacity: Positive = 100_000  # completed command ids remembered per worker

    # operations surface
    http_host: str = "0.0.0.0"  # noqa: S104 - the metrics/health port must be reachable in a pod
    http_port: Port = 8080
    webhook_secret: str = ""  # NCS secret; webhooks are refused while it is empty
    stall_timeout_seconds: Seconds = 300.0  # /livez: lag, no progress (> a command's budget)
    loop_block_seconds: Seconds = 5.0  # /livez fails when the event loop lags more than this
    reconcile_interval_seconds: Annotated[float, msgspec.Meta(ge=0)] = 0.0  # 0 = off
    # agents that stopped are forgotten (tombstoned on the state topic) this long after
    state_retention_seconds: Seconds = 86_400.0

    # logging
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def __post_init__(self) -> None:
        """Reject combinations no single field's constraint can express."""
        if self.kafka_heartbeat_interval_seconds * 3 > self.kafka_session_timeout_seconds:
            raise ValueError(
                "CONVOAI_KAFKA_HEARTBEAT_INTERVAL_SECONDS must be at most a third of "
                "CONVOAI_KAFKA_SESSION_TIMEOUT_SECONDS"
            )
        if self.max_result_bytes > self.max_record_bytes // 2:
            raise ValueError(
                "CONVOAI_MAX_RESULT_BYTES must be at most half of CONVOAI_MAX_RECORD_BYTES"
            )

    def redacted(self) -> dict[str, object]:
        """The settings as a dict with secrets masked, safe to log."""
        values = msgspec.structs.asdict(self)
        for name in SECRET_FIELDS:
            if values[name]:
                values[name] = "***"
        return values


SECRET_FIELDS = ("customer_secret", "auth_token", "webhook_secret")


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build `Settings` from `CONVOAI_*` variables, then apply explicit overrides (CLI flags)."""
    env = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    for field in msgspec.structs.fields(Settings):
        value = env.get(PREFIX + field.name.upper())
        if value is not None and value != "":
            raw[field.name] = value
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_explain(str(exc))) from None


def _explain(message: str) -> str:
    """Turn msgspec's `... - at `$.http_port`` into the variable name the operator set."""
    head, _, path = message.rpartition(" - at `$.")
    if not head:
        return message
    name = path.rstrip("`")
    return f"{PREFIX}{name.upper()}: {head}"
