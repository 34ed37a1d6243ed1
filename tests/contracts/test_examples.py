"""The examples in docs/contracts.md, and JSON Schema parity: a non-Python producer validating
with the committed schema gets the decoder's verdict."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import msgspec
import pytest
from hypothesis import given

from contracts import (
    COMMAND_TYPES,
    CommandDecodeError,
    decode_agent_state,
    decode_command,
    decode_result,
)
from tests.contracts.strategies import command_objects, no_deadline
from tests.contracts.support import command_validator, event_validator, guide_examples

EXAMPLES = guide_examples()
ROLES = {"command", "result", "agent-state", "invalid"}


def _of_role(role: str) -> list[tuple[str, str]]:
    return [(argument, text) for kind, argument, text in EXAMPLES if kind == role]


def _schema_accepts(document: Any) -> bool:
    return bool(command_validator().is_valid(document))


def test_every_json_block_in_the_guide_is_a_checked_example() -> None:
    """No JSON block in the guide escapes the checks below (each names its role)."""
    assert EXAMPLES
    assert {role for role, _, _ in EXAMPLES} <= ROLES


def test_the_guide_has_exactly_one_example_per_command() -> None:
    """Each of the 19 commands is shown once."""
    tags = Counter(json.loads(text)["command"] for _, text in _of_role("command"))
    assert tags == Counter(list(COMMAND_TYPES))


@pytest.mark.parametrize("text", [text for _, text in _of_role("command")])
def test_command_examples_decode_and_match_the_schema(text: str) -> None:
    """Every documented command is valid for the decoder and for the JSON Schema."""
    decoded = decode_command(text)
    assert decoded.command.tag() == json.loads(text)["command"]
    assert _schema_accepts(json.loads(text)), list(
        command_validator().iter_errors(json.loads(text))
    )


@pytest.mark.parametrize(("path", "text"), _of_role("invalid"))
def test_rejected_examples_are_rejected_by_both_at_the_documented_path(
    path: str, text: str
) -> None:
    """The guide's invalid examples fail in the decoder at the stated path, and in the schema."""
    with pytest.raises(CommandDecodeError) as caught:
        decode_command(text)
    assert caught.value.path == path
    assert not _schema_accepts(json.loads(text))


@pytest.mark.parametrize("text", [text for _, text in _of_role("result")])
def test_result_examples_decode_and_match_the_schema(text: str) -> None:
    """Documented results are valid results for the decoder and the events schema."""
    decode_result(text)
    assert event_validator("ResultEvent").is_valid(json.loads(text))


@pytest.mark.parametrize("text", [text for _, text in _of_role("agent-state")])
def test_agent_state_examples_decode_and_match_the_schema(text: str) -> None:
    """Documented state events are valid for the decoder and the events schema."""
    decode_agent_state(text)
    assert event_validator("AgentStateEvent").is_valid(json.loads(text))


@no_deadline
@given(command_objects())
def test_the_schema_accepts_every_command_the_decoder_accepts(obj: dict[str, Any]) -> None:
    """Generated valid commands (unknown keys included) pass the JSON Schema too."""
    decode_command(msgspec.json.encode(obj))
    assert _schema_accepts(obj), list(command_validator().iter_errors(obj))


SPEAK = {"command": "agent.speak", "id": "c", "agent_id": "A42"}
START_PROPERTIES = {"channel": "ch", "token": "", "agent_rtc_uid": "0", "remote_rtc_uids": ["*"]}
START = {"command": "agent.start", "id": "s", "name": "n", "properties": START_PROPERTIES}
ADD = {
    "command": "number.add",
    "id": "n",
    "provider": "byo",
    "phone_number": "+14155550100",
    "label": "l",
    "inbound_config": {},
    "outbound_config": {},
}

INVALID: list[tuple[Any, str]] = [
    ([SPEAK], "$"),
    ({"id": "c", "agent_id": "A42"}, "$.command"),
    ({**SPEAK, "command": 7, "text": "t"}, "$.command"),
    ({**SPEAK, "id": ""}, "$.id"),
    ({**SPEAK, "id": "x" * 129, "text": "t"}, "$.id"),
    ({**SPEAK, "app_id": "", "text": "t"}, "$.app_id"),
    ({**SPEAK, "app_id": "app/../other", "text": "t"}, "$.app_id"),
    (SPEAK, "$.text"),
    ({**SPEAK, "text": "a" * 513}, "$.text"),
    ({**SPEAK, "text": "t", "interruptable": "yes"}, "$.interruptable"),
    ({"command": "agent.speak", "id": "c", "text": "t"}, "$"),
    ({**SPEAK, "agent_id": None, "text": "t"}, "$"),
    ({**SPEAK, "agent_id": "A 42", "text": "t"}, "$.agent_id"),
    ({**SPEAK, "agent_id": "A42\n", "text": "t"}, "$.agent_id"),
    ({**SPEAK, "text": "t", "expires_at": "tomorrow"}, "$.expires_at"),
    (
        {
            "command": "agent.think",
            "id": "t",
            "name": "n",
            "text": "x",
            "on_thinking_action": "inject",
        },
        "$.on_thinking_action",
    ),
    ({"command": "agent.turns", "id": "t", "name": "n", "page_size": 9}, "$.page_size"),
    ({"command": "agent.turns", "id": "t", "name": "n", "page_index": 0}, "$.page_index"),
    ({"command": "agent.list", "id": "l", "state": "running"}, "$.state"),
    ({"command": "agent.list", "id": "l", "state": -1}, "$.state"),
    ({**SPEAK, "text": ""}, "$.text"),
    ({"command": "agent.think", "id": "t", "name": "n", "text": ""}, "$.text"),
    ({**START, "name": ""}, "$.name"),
    ({key: value for key, value in START.items() if key != "properties"}, "$.properties"),
    (
        {**START, "properties": {**START_PROPERTIES, "remote_rtc_uids": []}},
        "$.properties.remote_rtc_uids",
    ),
    (
        {**START, "properties": {**START_PROPERTIES, "idle_timeout": -1}},
        "$.properties.idle_timeout",
    ),
    (
        {**START, "properties": {**START_PROPERTIES, "geofence": {"area": "MARS"}}},
        "$.properties.geofence.area",
    ),
    (
        {**START, "properties": {**START_PROPERTIES, "llm": {"max_history": 0}}},
        "$.properties.llm.max_history",
    ),
    (
        {
            **START,
            "properties": {
                **START_PROPERTIES,
                "llm": {"mcp_servers": [{"name": "has space", "endpoint": "e"}]},
            },
        },
        "$.properties.llm.mcp_servers[0].name",
    ),
    (
        {**START, "properties": {**START_PROPERTIES, "tts": {"skip_patterns": [6]}}},
        "$.properties.tts.skip_patterns[0]",
    ),
    ({**START, "properties": {**START_PROPERTIES, "labels": {"a": 1}}}, "$.properties.labels[...]"),
    (
        {**START, "properties": {**START_PROPERTIES, "rtc": {"encryption_mode": 9}}},
        "$.properties.rtc.encryption_mode",
    ),
    (
        {
            **START,
            "properties": {
                **START_PROPERTIES,
                "filler_words": {"content": {"static_config": {"phrases": ["p"] * 101}}},
            },
        },
        "$.properties.filler_words.content.static_config.phrases",
    ),
    (
        {
            **START,
            "properties": {
                **START_PROPERTIES,
                "turn_detection": {"config": {"speech_threshold": 1}},
            },
        },
        "$.properties.turn_detection.config.speech_threshold",
    ),
    ({**ADD, "phone_number": "14155550100"}, "$.phone_number"),
    ({**ADD, "inbound_config": None}, "$.inbound_config"),
    ({**ADD, "provider": "Twilio"}, "$.provider"),
    ({**ADD, "label": ""}, "$.label"),
    ({key: value for key, value in ADD.items() if key != "outbound_config"}, "$.outbound_config"),
    ({"command": "number.delete", "id": "d"}, "$.phone_number"),
    ({"command": "call.get", "id": "g", "name": "n"}, "$.agent_id"),
]


@pytest.mark.parametrize(("document", "path"), INVALID)
def test_invalid_commands_get_the_same_verdict_from_decoder_and_schema(
    document: Any, path: str
) -> None:
    """Each invalid document is refused by both, and the decoder names the offending field."""
    with pytest.raises(CommandDecodeError) as caught:
        decode_command(msgspec.json.encode(document))
    assert caught.value.path == path
    assert not _schema_accepts(document)


@pytest.mark.parametrize(
    "document",
    [
        {**SPEAK, "text": "é" * 300},  # 300 characters, 600 bytes
        {"command": "agent.turns", "id": "t", "name": "n", "page_size": 50.0},
    ],
    ids=["speak-bytes", "integral-float"],
)
def test_documented_divergences_are_the_only_ones_listed(document: Any) -> None:
    """The corners the guide lists as schema-weaker behave exactly as it says."""
    with pytest.raises(CommandDecodeError):
        decode_command(msgspec.json.encode(document))
    assert _schema_accepts(document)
