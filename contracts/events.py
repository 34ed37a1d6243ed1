"""What the worker publishes: one result per command and agent state changes.

Every field is always written (absent values as `null`), so consumers in any language can read
a fixed shape. Timestamps are RFC 3339 in UTC: aware datetimes in another zone are converted
when the event is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from contracts._fields import AwareDatetime, NonNegativeInt, StrMap

Outcome = Literal["succeeded", "failed", "rejected", "expired", "unknown"]
"""How a command ended.

- `succeeded`: the API accepted the operation; `data` is its response body.
- `failed`: the API refused it or retries ran out; `error` says why.
- `rejected`: the record is not a valid command; `error.message` is the decode error.
- `expired`: `expires_at` passed before the command could run.
- `unknown`: a non-idempotent call may or may not have reached the API, so it was not re-sent.
"""

StateSource = Literal["command", "webhook", "reconcile"]
"""What revealed an agent's state: a command's API response, an Agora webhook, or a periodic
read of the API."""

AGENT_STATUS_CODES: Mapping[str, int] = MappingProxyType(
    {
        "IDLE": 0,
        "STARTING": 1,
        "RUNNING": 2,
        "STOPPING": 3,
        "STOPPED": 4,
        "RECOVERING": 5,
        "FAILED": 6,
    }
)
"""Status names the API documents and their numeric codes (the `agent.list` `state` filter)."""

KNOWN_AGENT_STATUSES = tuple(AGENT_STATUS_CODES)
"""Status names the API documents; others may appear and are passed through."""


class ErrorInfo(msgspec.Struct, frozen=True):
    """Why a command did not succeed.

    `code` is a stable machine-readable name, `message` is for humans. `http_status` and
    `reason` are the API's HTTP status and `reason` field when the API answered; `request_id`
    is the API's request id when it sent one; `retryable` says whether sending the same command
    again later could succeed. `details` is the API's error body as it was sent (JSON, or text
    when it was not JSON; a `TruncatedData` object when it was too large to publish).
    """

    code: Annotated[str, Meta(min_length=1)]
    message: str
    http_status: Annotated[int, Meta(ge=100, le=599)] | None = None
    reason: str | None = None
    request_id: str | None = None
    retryable: bool | None = None
    details: Any = None


def _in_utc(event: msgspec.Struct, *names: str) -> None:
    """Rewrite aware datetimes of a frozen event to UTC (same instant, `Z` on the wire)."""
    for name in names:
        value: datetime = getattr(event, name)
        if value.utcoffset() != timedelta(0):
            msgspec.structs.force_setattr(event, name, value.astimezone(UTC))


class TruncatedData(msgspec.Struct, frozen=True, kw_only=True):
    """What a result's `data` holds when the API's response was too large to publish.

    `bytes` is the size of the response body as JSON, `sha256` its hex digest. What is needed
    to read on is kept: a list's `meta` (`cursor`, `total`) and a turns page's `pagination`, as
    the API sent them; `hint` says how to read the body in parts (e.g. agent.history's
    `contents_from` and `contents_count`, or fewer `pages`).
    """

    truncated: Literal[True] = True
    bytes: NonNegativeInt
    sha256: Annotated[str, Meta(pattern="^[0-9a-f]{64}$")]
    meta: dict[str, Any] | UnsetType = UNSET
    pagination: dict[str, Any] | UnsetType = UNSET
    hint: str | UnsetType = UNSET


class ResultEvent(msgspec.Struct, frozen=True, kw_only=True):
    """The final result of one command, on the results topic, keyed like the command.

    `command` is the record's `command` value (null when a rejected record had none). Exactly
    one of `data` (when `outcome` is `succeeded`) or `error` (any other outcome) describes it.
    A `data` body larger than the worker's budget (`CONVOAI_MAX_RESULT_BYTES`) is replaced by a
    `TruncatedData` object; the outcome stays what it was.
    `attempts` counts the sends of the command's own request, retries included (0 when
    rejected or expired before running); reads that resolve a name or settle a conflict are not
    counted.
    `received_at` is the command record's timestamp, `completed_at` when the outcome was
    decided, `duration_ms` the time between them.

    `request_id` is the request id of the last API response the command received (for failures
    also in `error.request_id`). `reconciled` is true when an agent.start got 409 and reports
    the live agent holding its name instead of one it started: that agent's configuration is
    not necessarily the command's `properties`. `already_gone` is true when agent.stop,
    call.hangup or number.delete found a target known to have existed already gone (the API
    answered 404).
    """

    command_id: str
    command: str | None
    outcome: Outcome
    app_id: str | None = None
    agent_id: str | None = None
    name: str | None = None
    phone_number: str | None = None
    correlation_id: str | None = None
    data: Any = None
    error: ErrorInfo | None = None
    request_id: str | None = None
    reconciled: bool = False
    already_gone: bool = False
    attempts: NonNegativeInt
    received_at: AwareDatetime
    completed_at: AwareDatetime
    duration_ms: Annotated[float, Meta(ge=0)]

    json_schema_extra: ClassVar[Mapping[str, Any]] = MappingProxyType(
        {
            "if": {"properties": {"outcome": {"const": "succeeded"}}},
            "then": {"properties": {"error": {"type": "null"}}},
            "else": {"required": ["error"], "properties": {"error": {"type": "object"}}},
        }
    )

    def __post_init__(self) -> None:
        """Keep outcome and error consistent and timestamps in UTC."""
        if (self.outcome == "succeeded") != (self.error is None):
            raise ValueError("`error` must be set exactly when `outcome` is not `succeeded`")
        _in_utc(self, "received_at", "completed_at")


class AgentStateEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An agent's status as last observed, on the compacted agent-state topic keyed by agent id.

    `status` is the API's status name (see `KNOWN_AGENT_STATUSES`; unknown names are passed
    through). `command_id` is set when `source` is `command`. `message` carries the API's or
    webhook's reason text (e.g. why an agent left), `labels` the agent's `properties.labels`.
    """

    agent_id: Annotated[str, Meta(min_length=1)]
    app_id: str | None = None
    name: str | None = None
    status: Annotated[str, Meta(min_length=1, examples=list(KNOWN_AGENT_STATUSES))]
    source: StateSource
    command_id: str | None = None
    channel: str | None = None
    message: str | None = None
    observed_at: AwareDatetime
    labels: StrMap | None = None

    def __post_init__(self) -> None:
        """Keep the timestamp in UTC."""
        _in_utc(self, "observed_at")


Event = ResultEvent | AgentStateEvent
