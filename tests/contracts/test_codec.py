"""The codec never fails in any way but its own error, says where and what, and round-trips."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import (
    COMMAND_TYPES,
    CommandDecodeError,
    ContractDecodeError,
    decode_command,
    encode_command,
)
from tests.contracts.strategies import command_objects, json_values, no_deadline

KNOWN_KEYS = sorted(
    {f.encode_name for cls in COMMAND_TYPES.values() for f in msgspec.structs.fields(cls)}
)


ALL = ", ".join(COMMAND_TYPES)
ENVELOPE = {"command", "id", "app_id", "expires_at", "correlation_id", "api_headers"}
WORKER_OPTIONS = {"pages", "contents_from", "contents_count"}  # for the worker, not the API


def address_keys(tag: str) -> set[str]:
    """The keys that address the target, as `docs/contracts.md` describes them: path
    parameters, and `name` wherever an agent command takes an agent id."""
    path = COMMAND_TYPES[tag].path_template
    if "{agent_id}" in path:
        return {"agent_id", "name"} if tag.startswith("agent.") else {"agent_id"}
    return {"phone_number"} if "{phone_number}" in path else set()


def rejection(data: bytes | str) -> CommandDecodeError:
    with pytest.raises(CommandDecodeError) as caught:
        decode_command(data)
    return caught.value


class TestErrors:
    @pytest.mark.parametrize(
        ("data", "reason"),
        [
            (b"", "empty value, expected a JSON object"),
            (b" \n", "empty value, expected a JSON object"),
            (b'{"command": "agent.get",', "input data was truncated"),
            (b"\xff", "JSON is malformed: invalid character (byte 0)"),
            (b'"\xff"', "invalid UTF-8"),
            (b"[" * 5000 + b"]" * 5000, "JSON is nested too deeply"),
            (b'{"a": 1} trailing', "JSON is malformed: trailing characters (byte 10)"),
        ],
        ids=["empty", "blank", "truncated", "garbage", "bad-utf8", "too-deep", "trailing"],
    )
    def test_unreadable_input_is_malformed_json(self, data: bytes, reason: str) -> None:
        """Whatever is wrong with the bytes, the caller gets one error kind at the root."""
        error = rejection(data)
        assert (error.kind, error.path, error.reason) == ("malformed_json", "$", reason)
        assert (error.command, error.command_id) == (None, None)

    @pytest.mark.parametrize(
        ("data", "json_type"),
        [
            (b"[]", "array"),
            (b'"x"', "string"),
            (b"1.5", "number"),
            (b"null", "null"),
            (b"true", "boolean"),
        ],
    )
    def test_json_that_is_not_an_object_is_named(self, data: bytes, json_type: str) -> None:
        """The reason names what was found instead of an object."""
        error = rejection(data)
        assert (error.kind, str(error)) == ("not_an_object", f"$: expected object, got {json_type}")

    @pytest.mark.parametrize(
        ("document", "reason", "command"),
        [
            ({"id": "c1"}, "missing required field", None),
            (
                {"id": "c1", "command": "agent.dance"},
                f"unknown command 'agent.dance'; did you mean 'agent.update'?; one of: {ALL}",
                "agent.dance",
            ),
            (
                {"id": "c1", "command": "agent.speek"},
                f"unknown command 'agent.speek'; did you mean 'agent.speak'?; one of: {ALL}",
                "agent.speek",
            ),
            (
                {"id": "c1", "command": "reboot"},
                f"unknown command 'reboot'; one of: {ALL}",
                "reboot",
            ),
            ({"id": "c1", "command": ["agent.get"]}, "expected string, got array", None),
            ({"id": "c1", "command": None}, "expected string, got null", None),
            ({"id": "c1", "command": {}}, "expected string, got object", None),
        ],
    )
    def test_an_unusable_command_tag_is_unknown_command(
        self, document: dict[str, Any], reason: str, command: str | None
    ) -> None:
        """The id is still reported so the rejection can be tied to the command."""
        error = rejection(msgspec.json.encode(document))
        assert (error.kind, error.path, error.reason) == ("unknown_command", "$.command", reason)
        assert (error.command, error.command_id) == (command, "c1")

    def test_field_errors_read_path_colon_reason(self) -> None:
        """The message a DLQ reader sees is the design's example, word for word."""
        error = rejection(b'{"command":"agent.speak","id":"c-9","agent_id":"A42","text":5}')
        assert str(error) == "$.text: expected str, got int"
        assert (error.kind, error.command, error.command_id) == (
            "invalid_field",
            "agent.speak",
            "c-9",
        )

    def test_nested_errors_carry_the_full_path(self) -> None:
        """Errors deep inside `properties` point at the exact field, list index included."""
        document = {
            "command": "agent.start",
            "id": "s",
            "name": "n",
            "properties": {
                "channel": "c",
                "token": "t",
                "agent_rtc_uid": "0",
                "remote_rtc_uids": ["1"],
                "llm": {
                    "tools": [
                        {
                            "function": {"name": "f", "parameters": {}},
                            "server": {"method": "GET", "url": "u"},
                        }
                    ]
                },
            },
        }
        error = rejection(msgspec.json.encode(document))
        assert (
            str(error)
            == "$.properties.llm.tools[0].function.parameters.properties: missing required field"
        )

    def test_an_unreadable_id_is_not_reported(self) -> None:
        """`command_id` is only set when the id is a string."""
        error = rejection(b'{"command":"agent.get","id":5,"agent_id":"A"}')
        assert (error.path, error.command_id) == ("$.id", None)

    def test_the_error_is_a_value_error(self) -> None:
        """Callers that only know ValueError (or the contracts' base error) still catch it."""
        for caught in (ValueError, ContractDecodeError):
            with pytest.raises(caught):
                decode_command(b"{}")

    def test_text_input_is_accepted(self) -> None:
        """`str` works like UTF-8 bytes."""
        assert decode_command('{"command":"number.list","id":"n"}').rest == {}


def outcome(data: bytes) -> CommandDecodeError | None:
    """The decode error for `data`, or None when it is a valid command."""
    try:
        decode_command(data)
    except CommandDecodeError as error:
        return error
    return None


@no_deadline
@given(st.binary())
def test_arbitrary_bytes_only_ever_raise_the_decode_error(data: bytes) -> None:
    """No input crashes the caller with anything but CommandDecodeError."""
    error = outcome(data)
    assert error is None or str(error) == f"{error.path}: {error.reason}"


@no_deadline
@given(json_values)
def test_arbitrary_json_only_ever_raises_the_decode_error(value: Any) -> None:
    """Any JSON document either decodes or is rejected with a path into it."""
    error = outcome(msgspec.json.encode(value))
    assert error is None or error.path.startswith("$")


@no_deadline
@given(
    st.sampled_from(list(COMMAND_TYPES)),
    st.dictionaries(st.sampled_from(KNOWN_KEYS), json_values, max_size=6),
)
def test_known_fields_with_arbitrary_values_only_raise_the_decode_error(
    tag: str, fields: dict[str, Any]
) -> None:
    """Wrong-typed values in real fields of a real command are rejected, never crash."""
    error = outcome(msgspec.json.encode({**fields, "command": tag}))
    assert error is None or (error.kind, error.command) == ("invalid_field", tag)


@no_deadline
@given(command_objects())
def test_every_command_round_trips(obj: dict[str, Any]) -> None:
    """decode → encode → decode gives the same command; `rest` is the object minus the envelope."""
    decoded = decode_command(msgspec.json.encode(obj))
    assert decode_command(encode_command(decoded.command)).command == decoded.command
    excluded = ENVELOPE | WORKER_OPTIONS | address_keys(obj["command"])
    assert decoded.rest == {key: value for key, value in obj.items() if key not in excluded}
