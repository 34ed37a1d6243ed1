"""Bytes in, typed contracts out, and back; encoders and decoders are built once.

`decode_command` parses the record once into plain JSON values, validates them as the command
class its `command` value names and keeps the producer's own object for the API call: the typed
command drives the worker, `rest` is sent to the API verbatim, unknown fields included.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, TypeVar

import msgspec

from contracts._fields import FieldValueError
from contracts.commands import COMMAND_TYPES, Command, CommandBase
from contracts.errors import CommandDecodeError, EventDecodeError
from contracts.events import AgentStateEvent, Event, ResultEvent


class DecodedCommand(msgspec.Struct, frozen=True):
    """A valid command and the REST payload to send for it.

    `rest` is the record's JSON object minus the envelope and addressing keys, exactly as the
    producer wrote it: the JSON body of a POST/PATCH operation or the query parameters of a GET
    or DELETE operation (see the command class's `rest_location`).
    """

    command: Command
    rest: dict[str, Any]


_JSON = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()
_RESULT_DECODER = msgspec.json.Decoder(ResultEvent)
_AGENT_STATE_DECODER = msgspec.json.Decoder(AgentStateEvent)
_NON_REST_FIELDS = {cls: cls.non_rest_fields() for cls in COMMAND_TYPES.values()}
# msgspec's JSON decoder recurses in C and raises RecursionError past the interpreter's limit;
# invalid UTF-8 surfaces as UnicodeDecodeError. Both mean "not a JSON document we can read".
_UNREADABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
_AT_PATH = " - at `"
_MISSING_FIELD = re.compile(r"Object missing required field `(?P<field>[^`]*)`")

EventT = TypeVar("EventT", ResultEvent, AgentStateEvent)


def decode_command(data: bytes | str) -> DecodedCommand:
    """Decode and validate one command record value.

    Raises `CommandDecodeError` for every invalid input and nothing else. The class is chosen
    from the `command` value first: converting to one Struct is an order of magnitude faster
    than converting to the union, whose type information msgspec cannot cache.
    """
    try:
        obj = _JSON.decode(data)
    except _UNREADABLE as exc:
        raise CommandDecodeError(
            kind="malformed_json", path="$", reason=_unreadable_reason(exc, data)
        ) from exc
    if not isinstance(obj, dict):
        raise CommandDecodeError(
            kind="not_an_object", path="$", reason=f"expected object, got {_json_type(obj)}"
        )
    tag = obj.get("command")
    command_id = obj.get("id")
    cls = COMMAND_TYPES.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise _unknown_command(obj, command_id)
    try:
        command = msgspec.convert(obj, cls)
    except msgspec.ValidationError as exc:
        path, reason = _locate(exc)
        raise CommandDecodeError(
            kind="invalid_field",
            path=path,
            reason=reason,
            command=tag,
            command_id=command_id if isinstance(command_id, str) else None,
            app_id=_string(obj.get("app_id")),
        ) from exc
    excluded = _NON_REST_FIELDS[cls]
    return DecodedCommand(command, {k: v for k, v in obj.items() if k not in excluded})


def encode_command(command: CommandBase) -> bytes:
    """The JSON record value of a command, as a producer writes it to the commands topic."""
    return _ENCODER.encode(command)


def encode_event(event: Event) -> bytes:
    """The JSON record value of a result or agent-state event."""
    return _ENCODER.encode(event)


def decode_result(data: bytes | str) -> ResultEvent:
    """Decode a results-topic record value; raises `EventDecodeError` if it is not one."""
    return _decode_event(_RESULT_DECODER, data)


def decode_agent_state(data: bytes | str) -> AgentStateEvent:
    """Decode an agent-state-topic record value; raises `EventDecodeError` if it is not one."""
    return _decode_event(_AGENT_STATE_DECODER, data)


def _decode_event(decoder: msgspec.json.Decoder[EventT], data: bytes | str) -> EventT:
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        path, reason = _locate(exc)
        raise EventDecodeError(kind="invalid_field", path=path, reason=reason) from exc
    except _UNREADABLE as exc:
        raise EventDecodeError(
            kind="malformed_json", path="$", reason=_unreadable_reason(exc, data)
        ) from exc


def _unknown_command(obj: dict[str, Any], command_id: object) -> CommandDecodeError:
    tag = obj.get("command")
    if "command" not in obj:
        reason = "missing required field"
    elif isinstance(tag, str):
        reason = (
            f"unknown command {tag!r}{_closest_command(tag)}; one of: {', '.join(COMMAND_TYPES)}"
        )
    else:
        reason = f"expected string, got {_json_type(tag)}"
    return CommandDecodeError(
        kind="unknown_command",
        path="$.command",
        reason=reason,
        command=tag if isinstance(tag, str) else None,
        command_id=command_id if isinstance(command_id, str) else None,
        app_id=_string(obj.get("app_id")),
    )


def _string(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _locate(exc: msgspec.ValidationError) -> tuple[str, str]:
    """Split msgspec's "<reason> - at `<path>`" into a path to the field and a plain reason."""
    message, path = str(exc), "$"
    head, sep, tail = message.rpartition(_AT_PATH)
    if sep and tail.endswith("`"):
        message, path = head, tail[:-1]
    cause = exc.__cause__
    if isinstance(cause, FieldValueError):
        return f"{path}.{cause.field}", cause.reason
    missing = _MISSING_FIELD.fullmatch(message)
    if missing:
        return f"{path}.{missing['field']}", "missing required field"
    return path, _plain(message)


def _plain(message: str) -> str:
    """msgspec's "Expected `str`, got `int`" as "expected str, got int"."""
    message = message.replace("`", "")
    if message[:1].isupper() and message[1:2].islower():  # "Expected", not "JSON"
        return message[:1].lower() + message[1:]
    return message


def _closest_command(tag: str) -> str:
    """`; did you mean 'agent.stop'?` for a near miss, else nothing."""
    close = difflib.get_close_matches(tag.lower(), COMMAND_TYPES, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _unreadable_reason(exc: Exception, data: bytes | str) -> str:
    if not data.strip():
        return "empty value, expected a JSON object"
    if isinstance(exc, RecursionError):
        return "JSON is nested too deeply"
    if isinstance(exc, UnicodeDecodeError):
        return "invalid UTF-8"
    return _plain(str(exc))


def _json_type(value: object) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"
