"""Building requests from commands: paths, body rules and query encoding."""

from __future__ import annotations

from typing import Any

import msgspec

from contracts import AgentList, AgentStop, decode_command
from worker.api.requests import ApiRequest, build_request, encode_query, path_for, request_for


def build(command: dict[str, Any], **ids: str) -> ApiRequest:
    decoded = decode_command(msgspec.json.encode(command))
    return build_request(decoded.command, decoded.rest, app_id="app", **ids)


def test_envelope_and_address_fields_never_reach_the_body() -> None:
    """`command`, `id`, `app_id`, `expires_at`, `correlation_id` and `agent_id` stay out."""
    request = build(
        {
            "command": "agent.speak",
            "id": "c-17",
            "app_id": "app",
            "expires_at": "2030-01-01T00:00:00Z",
            "correlation_id": "corr",
            "agent_id": "A42",
            "text": "Hello",
            "priority": "INTERRUPT",
            "interruptable": False,
        },
        agent_id="A42",
    )
    assert request == ApiRequest(
        "agent.speak",
        "POST",
        "/v2/projects/app/agents/A42/speak",
        "",
        b'{"text":"Hello","priority":"INTERRUPT","interruptable":false}',
        True,
        "app",  # signed with this App ID's credentials
    )


def test_empty_bodies_are_dropped_but_json_operations_keep_their_content_type() -> None:
    """Interrupt sends no body with content-type; leave sends neither."""
    interrupt = build({"command": "agent.interrupt", "id": "c", "agent_id": "A"}, agent_id="A")
    assert (interrupt.body, interrupt.json_content) == (None, True)
    stop = build({"command": "agent.stop", "id": "c", "agent_id": "A"}, agent_id="A")
    assert (stop.method, stop.body, stop.json_content) == ("POST", None, False)


def test_a_body_on_a_body_less_operation_is_json() -> None:
    """Unknown fields on leave are sent as a JSON body, with its content-type."""
    stop = request_for(AgentStop, "/x", {"farewell": True})
    assert (stop.body, stop.json_content) == (b'{"farewell":true}', True)


def test_explicit_nulls_are_sent() -> None:
    """`null` clears a phone number's configuration and must reach the API."""
    update = build(
        {
            "command": "number.update",
            "id": "c",
            "phone_number": "+15550001111",
            "inbound_config": None,
        },
        phone_number="+15550001111",
    )
    assert (update.method, update.path, update.body) == (
        "PATCH",
        "/v2/phone-numbers/+15550001111",
        b'{"inbound_config":null}',
    )


def test_query_follows_the_sdk_rules() -> None:
    """Booleans are lowercase, lists repeat their key, objects nest, None is dropped."""
    query = encode_query(
        {"a": True, "b": False, "c": [1, "x y"], "d": {"e": 1.5}, "f": None, "g": "0,1"}
    )
    assert query == "a=true&b=false&c=1&c=x+y&d%5Be%5D=1.5&g=0%2C1"


def test_get_list_parameters_go_to_the_query_in_sdk_order() -> None:
    """agent.list writes its query in the SDK's parameter order, unknown ones after."""
    request = request_for(AgentList, "/l", {"zone": "eu", "limit": 5, "channel": "c"})
    assert (request.query, request.body, request.json_content) == (
        "channel=c&limit=5&zone=eu",
        None,
        False,
    )


def test_path_parameters_that_would_change_the_path_are_encoded() -> None:
    """A `/` or `?` in an App ID cannot reach another endpoint; `+` stays as the SDK writes it."""
    assert path_for(AgentList, app_id="a/../b?c") == "/v2/projects/a%2F..%2Fb%3Fc/agents"
    assert (
        path_for(AgentStop, app_id="app", agent_id="+1@x") == "/v2/projects/app/agents/+1@x/leave"
    )
