"""Command decoding: the operation table, addressing, `rest` forwarding, documented limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from contracts import (
    COMMAND_TYPES,
    AgentList,
    AgentProperties,
    AgentSpeak,
    AgentStart,
    CommandDecodeError,
    NumberUpdate,
    decode_command,
    encode_command,
)

# `docs/api-reference.md` §2.0, in the order of the command list in `docs/contracts.md`.
OPERATIONS = {
    "agent.start": ("POST", "/v2/projects/{appid}/join"),
    "agent.stop": ("POST", "/v2/projects/{appid}/agents/{agent_id}/leave"),
    "agent.update": ("POST", "/v2/projects/{appid}/agents/{agent_id}/update"),
    "agent.speak": ("POST", "/v2/projects/{appid}/agents/{agent_id}/speak"),
    "agent.interrupt": ("POST", "/v2/projects/{appid}/agents/{agent_id}/interrupt"),
    "agent.think": ("POST", "/v2/projects/{appid}/agents/{agent_id}/think"),
    "agent.get": ("GET", "/v2/projects/{appid}/agents/{agent_id}"),
    "agent.list": ("GET", "/v2/projects/{appid}/agents"),
    "agent.history": ("GET", "/v2/projects/{appid}/agents/{agent_id}/history"),
    "agent.turns": ("GET", "/v2/projects/{appid}/agents/{agent_id}/turns"),
    "call.start": ("POST", "/v2/projects/{appid}/call"),
    "call.hangup": ("POST", "/v2/projects/{appid}/calls/{agent_id}/hangup"),
    "call.get": ("GET", "/v2/projects/{appid}/calls/{agent_id}"),
    "call.list": ("GET", "/v2/projects/{appid}/call"),
    "number.add": ("POST", "/v2/phone-numbers"),
    "number.get": ("GET", "/v2/phone-numbers/{phone_number}"),
    "number.list": ("GET", "/v2/phone-numbers"),
    "number.update": ("PATCH", "/v2/phone-numbers/{phone_number}"),
    "number.delete": ("DELETE", "/v2/phone-numbers/{phone_number}"),
}
NOT_IDEMPOTENT = {"agent.speak", "agent.think", "agent.interrupt", "call.start"}
ADDRESSED_BY_AGENT = {
    "agent.stop",
    "agent.update",
    "agent.speak",
    "agent.interrupt",
    "agent.think",
    "agent.get",
    "agent.history",
    "agent.turns",
}
WORKER_OPTIONS = {  # read by the worker, never sent to the API
    "agent.list": {"pages"},
    "call.list": {"pages"},
    "agent.turns": {"pages"},
    "agent.history": {"contents_from", "contents_count"},
}

START_PROPERTIES: dict[str, Any] = {
    "channel": "room-1",
    "token": "007abc",
    "agent_rtc_uid": "0",
    "remote_rtc_uids": ["*"],
}


def decode(document: dict[str, Any]) -> Any:
    return decode_command(msgspec.json.encode(document))


def rejection(document: dict[str, Any]) -> CommandDecodeError:
    with pytest.raises(CommandDecodeError) as caught:
        decode(document)
    return caught.value


class TestOperationTable:
    def test_there_is_one_command_per_api_operation_in_reference_order(self) -> None:
        """The 19 tags are exactly the design's, in the API reference's order."""
        assert list(COMMAND_TYPES) == list(OPERATIONS)

    @pytest.mark.parametrize("tag", OPERATIONS)
    def test_method_path_and_payload_location_match_the_api_reference(self, tag: str) -> None:
        """Each class names the reference's method and path; bodies for POST/PATCH only."""
        cls = COMMAND_TYPES[tag]
        assert (cls.http_method, cls.path_template) == OPERATIONS[tag]
        expected = "body" if cls.http_method in {"POST", "PATCH"} else "query"
        assert cls.rest_location == expected

    @pytest.mark.parametrize("tag", OPERATIONS)
    def test_the_class_docstring_states_the_operation(self, tag: str) -> None:
        """The documentation of each class cannot drift from its class variables."""
        cls = COMMAND_TYPES[tag]
        assert f"`{cls.http_method} {cls.path_template}`" in (cls.__doc__ or "")
        assert ("Not idempotent" in (cls.__doc__ or "")) == (not cls.idempotent)

    def test_only_speak_think_interrupt_and_call_start_are_not_idempotent(self) -> None:
        """These four must not be re-sent after an ambiguous failure."""
        assert {tag for tag, cls in COMMAND_TYPES.items() if not cls.idempotent} == NOT_IDEMPOTENT

    @pytest.mark.parametrize("tag", OPERATIONS)
    def test_address_fields_are_the_path_parameters(self, tag: str) -> None:
        """Keys kept out of `rest` are the path parameters (and `name` for agent addressing)."""
        cls = COMMAND_TYPES[tag]
        expected: set[str] = set()
        if tag in ADDRESSED_BY_AGENT:
            expected = {"agent_id", "name"}
        elif "{agent_id}" in cls.path_template:
            expected = {"agent_id"}
        elif "{phone_number}" in cls.path_template:
            expected = {"phone_number"}
        assert cls.address_fields == expected
        envelope = {"command", "id", "app_id", "expires_at", "correlation_id", "api_headers"}
        options = WORKER_OPTIONS.get(tag, set())
        assert cls.non_rest_fields() == envelope | expected | options


class TestRest:
    def test_the_design_example_becomes_exactly_the_documented_body(self) -> None:
        """The speak command's body is its REST fields and nothing else (`docs/contracts.md`)."""
        decoded = decode(
            {
                "command": "agent.speak",
                "id": "c-17",
                "agent_id": "A42",
                "text": "Hello",
                "priority": "INTERRUPT",
                "interruptable": False,
            }
        )
        assert decoded.rest == {"text": "Hello", "priority": "INTERRUPT", "interruptable": False}
        assert decoded.command == AgentSpeak(
            id="c-17", agent_id="A42", text="Hello", priority="INTERRUPT", interruptable=False
        )

    def test_unknown_fields_at_any_depth_are_forwarded_verbatim(self) -> None:
        """A field the contract does not know reaches the API unchanged, nested ones too."""
        properties = {
            **START_PROPERTIES,
            "brand_new_feature": {"level": 3},
            "llm": {"url": "https://llm", "future_knob": [1, 2], "params": {"model": "m"}},
        }
        decoded = decode(
            {
                "command": "agent.start",
                "id": "s1",
                "app_id": "app",
                "expires_at": "2030-01-01T00:00:00Z",
                "correlation_id": "corr",
                "name": "bot",
                "properties": properties,
                "top_level_extra": None,
            }
        )
        assert decoded.rest == {"name": "bot", "properties": properties, "top_level_extra": None}

    def test_nothing_is_added_to_rest(self) -> None:
        """Defaults of the contract never appear in the payload the API receives."""
        decoded = decode(
            {"command": "agent.start", "id": "s", "name": "n", "properties": START_PROPERTIES}
        )
        assert decoded.rest == {"name": "n", "properties": START_PROPERTIES}

    def test_phone_number_is_a_body_field_of_add_and_a_path_parameter_elsewhere(self) -> None:
        """number.add sends `phone_number` in its body; update takes it from the path."""
        add = {
            "command": "number.add",
            "id": "a",
            "provider": "twilio",
            "phone_number": "+14155550100",
            "label": "main",
            "inbound_config": {},
            "outbound_config": {},
        }
        assert decode(add).rest["phone_number"] == "+14155550100"
        update = {"command": "number.update", "id": "u", "phone_number": "+14155550100"}
        assert decode(update).rest == {}

    def test_explicit_null_is_kept_where_the_api_gives_it_meaning(self) -> None:
        """number.update: `null` clears a configuration, so it must reach the API."""
        decoded = decode(
            {
                "command": "number.update",
                "id": "u",
                "phone_number": "+14155550100",
                "inbound_config": None,
            }
        )
        assert decoded.rest == {"inbound_config": None}
        assert isinstance(decoded.command, NumberUpdate)
        assert decoded.command.inbound_config is None
        assert decoded.command.outbound_config is msgspec.UNSET

    def test_list_filters_are_the_query(self) -> None:
        """GET operations carry their query parameters in `rest`."""
        decoded = decode({"command": "agent.list", "id": "l", "state": "0,1,2", "from_time": 1.5})
        assert decoded.rest == {"state": "0,1,2", "from_time": 1.5}

    @pytest.mark.parametrize(
        ("state", "query"),
        [(2, "2"), ("2", "2"), ("RUNNING", "2"), ("STOPPING", "3"), ("FAILED", "6"), (0, "0")],
    )
    def test_list_state_is_a_code_a_numeric_string_or_a_status_name(
        self, state: object, query: str
    ) -> None:
        """The API documents one state per query as an enum; each form becomes its code."""
        decoded = decode({"command": "agent.list", "id": "l", "state": state})
        assert isinstance(decoded.command, AgentList)
        assert decoded.command.state_query() == query

    def test_list_state_codes_separated_by_commas_are_kept_as_written(self) -> None:
        """Accepted by earlier versions of the contract, so still forwarded verbatim."""
        decoded = decode({"command": "agent.list", "id": "l", "state": "0,1,2"})
        assert isinstance(decoded.command, AgentList)
        assert decoded.command.state_query() == "0,1,2"

    def test_call_properties_may_leave_out_the_remote_uids(self) -> None:
        """The SDK makes `remote_rtc_uids` optional for calls (the SIP gateway joins anyway)."""
        call = {
            "command": "call.start",
            "id": "c",
            "name": "call",
            "sip": {
                "to_number": "+14155550100",
                "from_number": "+14155550101",
                "rtc_uid": "100",
                "rtc_token": "t",
            },
            "properties": {"channel": "c", "token": "t", "agent_rtc_uid": "111"},
        }
        assert decode(call).rest["properties"] == call["properties"]

    def test_the_deprecated_interrupt_duration_takes_fractions(self) -> None:
        """The SDK types `turn_detection.interrupt_duration_ms` as a float."""
        properties = {**START_PROPERTIES, "turn_detection": {"interrupt_duration_ms": 160.5}}
        decode({"command": "agent.start", "id": "s", "name": "n", "properties": properties})


class TestAddressing:
    @pytest.mark.parametrize("tag", sorted(ADDRESSED_BY_AGENT - {"agent.speak", "agent.think"}))
    def test_agent_commands_accept_a_name_instead_of_an_id(self, tag: str) -> None:
        """The worker resolves `name` to the id it got when it started the agent."""
        decoded = decode({"command": tag, "id": "c", "name": "support-1"})
        assert decoded.command.name == "support-1"
        assert decoded.command.agent_id is None
        assert decoded.rest == {}

    @pytest.mark.parametrize(
        "address",
        [{}, {"agent_id": "A", "name": "n"}, {"agent_id": None, "name": None}],
        ids=["neither", "both", "both-null"],
    )
    def test_exactly_one_address_is_required(self, address: dict[str, Any]) -> None:
        """No address, or two, is refused at the object."""
        error = rejection({"command": "agent.stop", "id": "c", **address})
        assert (error.path, error.kind) == ("$", "invalid_field")
        assert error.reason == "exactly one of agent_id or name is required"

    def test_null_counts_as_absent(self) -> None:
        """`"agent_id": null` next to a name addresses by name."""
        decoded = decode({"command": "agent.stop", "id": "c", "agent_id": None, "name": "n"})
        assert decoded.command.name == "n"

    @pytest.mark.parametrize("agent_id", ["A/B", "A?x=1", "A#f", "A%2F", "A B", "A\n", ""])
    def test_path_parameters_cannot_escape_their_segment(self, agent_id: str) -> None:
        """Ids are inserted verbatim into the URL, so separators are refused."""
        error = rejection({"command": "agent.get", "id": "c", "agent_id": agent_id})
        assert error.path == "$.agent_id"

    @pytest.mark.parametrize("field", ["agent_id", "app_id"])
    @pytest.mark.parametrize("segment", [".", ".."])
    def test_dot_segments_are_refused(self, field: str, segment: str) -> None:
        """`agents/../leave` would be normalised into another path of the API."""
        command = {"command": "agent.get", "id": "c", "agent_id": "A", field: segment}
        assert rejection(command).path == f"$.{field}"

    @pytest.mark.parametrize("agent_id", ["...", ".A", "A.", "A..B"])
    def test_dots_inside_a_segment_are_kept(self, agent_id: str) -> None:
        """Only a whole segment of dots means something to URL normalisation."""
        assert decode({"command": "agent.get", "id": "c", "agent_id": agent_id})

    @pytest.mark.parametrize(
        "number", ["14155550100", "+0123", "+1", "+1234567890123456", "+1 415"]
    )
    def test_phone_numbers_are_e164(self, number: str) -> None:
        """Both the body and the path use E.164."""
        error = rejection({"command": "number.get", "id": "c", "phone_number": number})
        assert error.path == "$.phone_number"


class TestLimits:
    def test_speak_text_may_use_all_512_bytes_of_utf8(self) -> None:
        """256 two-byte characters are exactly at the limit."""
        decode({"command": "agent.speak", "id": "c", "agent_id": "A", "text": "é" * 256})

    @pytest.mark.parametrize("text", ["é" * 257, "a" * 513, "😀" * 128 + "a"])
    def test_speak_text_over_512_bytes_is_refused_at_the_field(self, text: str) -> None:
        """The byte limit is checked even where the character count is small."""
        error = rejection({"command": "agent.speak", "id": "c", "agent_id": "A", "text": text})
        assert error.path == "$.text"
        assert "512" in error.reason

    def test_python_producers_get_the_byte_limit_at_construction(self) -> None:
        """Building an oversize speak fails before anything is produced."""
        with pytest.raises(ValueError, match="512 bytes"):
            AgentSpeak(id="c", agent_id="A", text="é" * 257)

    @pytest.mark.parametrize("page_size", [10, 200])
    def test_turns_page_size_bounds_are_inclusive(self, page_size: int) -> None:
        """10 and 200 are the API's documented range."""
        decode({"command": "agent.turns", "id": "c", "agent_id": "A", "page_size": page_size})

    @pytest.mark.parametrize("page_size", [9, 201])
    def test_turns_page_size_outside_the_range_is_refused(self, page_size: int) -> None:
        """Values the API would refuse never reach it."""
        error = rejection(
            {"command": "agent.turns", "id": "c", "agent_id": "A", "page_size": page_size}
        )
        assert error.path == "$.page_size"

    @pytest.mark.parametrize("field", ["channel", "token", "agent_rtc_uid", "remote_rtc_uids"])
    def test_start_requires_the_rtc_fields(self, field: str) -> None:
        """The API requires them in every form of start."""
        properties = {k: v for k, v in START_PROPERTIES.items() if k != field}
        error = rejection(
            {"command": "agent.start", "id": "s", "name": "n", "properties": properties}
        )
        assert (error.path, error.reason) == (f"$.properties.{field}", "missing required field")

    def test_start_requires_a_name(self) -> None:
        """`name` makes a retried start safe (409 instead of a second agent)."""
        error = rejection({"command": "agent.start", "id": "s", "properties": START_PROPERTIES})
        assert error.path == "$.name"

    @pytest.mark.parametrize(
        "extra",
        [
            {"tts": {"params": {"speed": 1.2}}},
            {"asr": {"params": {"language": "en-US"}}},
            {"llm": {"params": {"max_tokens": 100}}},
            {"mllm": {"enable": True, "vendor": "openai", "params": {"voice": "alloy"}}},
            {"turn_detection": {"language": "en-US"}},
            {
                "llm": {
                    "mcp_servers": [
                        {"name": "crm", "endpoint": "https://mcp", "allowed_tools": "*"}
                    ]
                }
            },
            {"avatar": {"enable": True, "vendor": "heygen", "params": {"avatar_id": "x"}}},
            {"geofence": {"area": "GLOBAL", "exclude_area": "EUROPE"}},
            {
                "turn_detection": {
                    "config": {
                        "end_of_speech": {
                            "mode": "semantic",
                            "semantic_config": {"max_wait_ms": -1},
                        }
                    }
                }
            },
        ],
        ids=[
            "tts-preset",
            "asr-preset",
            "llm-preset",
            "mllm",
            "sdk-language",
            "mcp-all-tools",
            "avatar",
            "geofence",
            "no-wait-limit",
        ],
    )
    def test_forms_the_reference_allows_are_accepted(self, extra: dict[str, Any]) -> None:
        """Presets reduce a module to `params`; the wildcard UID and other documented forms pass."""
        document = {
            "command": "agent.start",
            "id": "s",
            "name": "n",
            "preset": "deepgram_nova_3,openai_gpt_4o_mini,minimax_speech_2_6_turbo",
            "properties": {**START_PROPERTIES, **extra},
        }
        decode(document)

    def test_pipeline_start_needs_only_the_rtc_fields(self) -> None:
        """With a `pipeline_id` the AI Studio configuration supplies the modules."""
        decoded = decode(
            {
                "command": "agent.start",
                "id": "s",
                "name": "n",
                "pipeline_id": "p",
                "properties": START_PROPERTIES,
            }
        )
        assert isinstance(decoded.command, AgentStart)
        assert decoded.rest == {"name": "n", "pipeline_id": "p", "properties": START_PROPERTIES}

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("on_listening_action", "inject"),
            ("on_listening_action", "append"),
            ("on_thinking_action", "append"),
            ("on_speaking_action", "append"),
        ],
    )
    def test_think_accepts_the_documented_and_sdk_actions(self, field: str, value: str) -> None:
        """`append` comes from the SDK, `inject` only applies while listening."""
        decode({"command": "agent.think", "id": "t", "agent_id": "A", "text": "x", field: value})


class TestEnvelope:
    def test_expires_at_is_an_aware_datetime(self) -> None:
        """Any offset is accepted and kept as an aware datetime."""
        decoded = decode(
            {"command": "number.list", "id": "n", "expires_at": "2030-01-01T02:00:00+02:00"}
        )
        assert decoded.command.expires_at == datetime(2030, 1, 1, tzinfo=UTC)
        assert decoded.command.expires_at.utcoffset() == timedelta(hours=2)

    def test_a_deadline_without_offset_is_refused(self) -> None:
        """A naive time would mean different instants on different hosts."""
        error = rejection(
            {"command": "number.list", "id": "n", "expires_at": "2030-01-01T00:00:00"}
        )
        assert error.path == "$.expires_at"

    @pytest.mark.parametrize("command_id", ["", "x" * 129])
    def test_the_command_id_has_1_to_128_characters(self, command_id: str) -> None:
        """An empty id cannot key idempotency; a huge one would bloat every result."""
        error = rejection({"command": "number.list", "id": command_id})
        assert error.path == "$.id"
        assert error.command_id == command_id


class TestEncode:
    def test_encode_writes_only_what_the_producer_set(self) -> None:
        """Unset optional fields are omitted, so the payload is exactly the producer's intent."""
        command = AgentStart(
            id="s",
            name="n",
            properties=AgentProperties(
                channel="c", token="t", agent_rtc_uid="0", remote_rtc_uids=["*"]
            ),
        )
        assert msgspec.json.decode(encode_command(command)) == {
            "command": "agent.start",
            "id": "s",
            "name": "n",
            "properties": {
                "channel": "c",
                "token": "t",
                "agent_rtc_uid": "0",
                "remote_rtc_uids": ["*"],
            },
        }

    def test_explicit_null_survives_encoding(self) -> None:
        """`None` (clear) and unset (leave alone) stay different on the wire."""
        command = NumberUpdate(id="u", phone_number="+14155550100", inbound_config=None)
        assert msgspec.json.decode(encode_command(command)) == {
            "command": "number.update",
            "id": "u",
            "phone_number": "+14155550100",
            "inbound_config": None,
        }
