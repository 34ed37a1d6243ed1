"""The errors of the codec.

    ValueError
     └── ContractDecodeError        kind, path, reason; str() reads "$.text: expected str, got int"
          ├── CommandDecodeError    + command, command_id (what could be read of the record)
          └── EventDecodeError

Decoding never raises anything else for any input bytes or text, so a consumer loop can route
every failure (to a rejected result and the DLQ) with one `except`.
"""

from __future__ import annotations

from typing import Literal

DecodeErrorKind = Literal["malformed_json", "not_an_object", "unknown_command", "invalid_field"]


class ContractDecodeError(ValueError):
    """Bytes that are not a valid contract document; says where (`path`) and what (`reason`).

    `kind` is `malformed_json` (not JSON, not UTF-8, or nested too deeply), `not_an_object` (JSON
    but not an object), `unknown_command` (`command` missing, not a string, or not one of the
    known values) or `invalid_field` (any other field fails its type or constraint).
    """

    def __init__(self, *, kind: DecodeErrorKind, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.kind: DecodeErrorKind = kind
        self.path = path
        self.reason = reason


class CommandDecodeError(ContractDecodeError):
    """A command record the worker cannot execute.

    `command`, `command_id` and `app_id` are the record's `command`, `id` and `app_id` values
    when they could be read as strings (even if invalid), so the rejection can still be reported
    against the command, under its App ID.
    """

    def __init__(
        self,
        *,
        kind: DecodeErrorKind,
        path: str,
        reason: str,
        command: str | None = None,
        command_id: str | None = None,
        app_id: str | None = None,
    ) -> None:
        super().__init__(kind=kind, path=path, reason=reason)
        self.command = command
        self.command_id = command_id
        self.app_id = app_id


class EventDecodeError(ContractDecodeError):
    """An output-topic record that is not a valid result or agent-state event."""
