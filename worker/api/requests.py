"""Command → HTTP request, byte for byte what the official SDK (`agora-agents` 2.12) sends.

The command class says where its REST payload goes (`http_method`, `path_template`,
`rest_location`); this module adds what only the SDK's generated code knows: the order in which
it writes body keys and query parameters, and which operations declare a JSON body (those send
`content-type: application/json` even when the body ends up empty, e.g. interrupt and hangup).
The SDK drops an empty JSON object body entirely and omits `None` query parameters; bodies are
compact JSON with non-ASCII characters unescaped, queries are form-encoded (`state=0%2C1`).
Fields the SDK does not know follow its own fields in the producer's order, as the SDK's
`additional_body_parameters` / `additional_query_parameters` would.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode

import msgspec

from contracts import AgentList, CommandBase

SDK_FIELD_ORDER: Mapping[str, tuple[str, ...]] = {
    "agent.start": ("name", "preset", "pipeline_id", "properties"),
    "agent.list": ("channel", "from_time", "to_time", "state", "limit", "cursor"),
    "agent.turns": ("page_index", "page_size"),
    "agent.update": ("properties",),
    "agent.speak": ("text", "priority", "interruptable"),
    "agent.think": (
        "text",
        "on_listening_action",
        "on_thinking_action",
        "on_speaking_action",
        "interruptable",
        "metadata",
    ),
    "call.list": ("number", "from_time", "to_time", "type", "limit", "cursor"),
    "call.start": ("name", "sip", "pipeline_id", "properties"),
    "number.add": (
        "provider",
        "phone_number",
        "label",
        "inbound",
        "outbound",
        "inbound_config",
        "outbound_config",
    ),
    "number.update": ("inbound_config", "outbound_config"),
}
JSON_BODY_OPERATIONS = frozenset(
    {
        "agent.start",
        "agent.update",
        "agent.speak",
        "agent.interrupt",
        "agent.think",
        "call.start",
        "call.hangup",
        "number.add",
        "number.update",
    }
)
# Characters the SDK leaves as they are in a path segment (a `+1...` phone number stays as is);
# anything else, e.g. a `/` in a configured App ID, is percent-encoded so it cannot change the path.
PATH_SAFE = "!$&'()*+,;=:@"

_encode_json = msgspec.json.Encoder().encode


class ApiRequest(NamedTuple):
    """One HTTP request, relative to the API base URL."""

    operation: str  # the command tag, e.g. "agent.speak"
    method: str
    path: str  # e.g. "/v2/projects/<app>/agents/<id>/speak"
    query: str  # encoded, without "?"; "" for none
    body: bytes | None
    json_content: bool  # whether to send `content-type: application/json`
    app_id: str = ""  # whose credentials sign it (phone-number paths do not name the App ID)
    headers: tuple[tuple[str, str], ...] = ()  # the command's `api_headers`, sent as given


def build_request(
    command: CommandBase,
    rest: Mapping[str, Any],
    *,
    app_id: str,
    agent_id: str | None = None,
    phone_number: str | None = None,
) -> ApiRequest:
    """The request for `command`, whose REST payload is `rest` (`DecodedCommand.rest`)."""
    path = path_for(type(command), app_id=app_id, agent_id=agent_id, phone_number=phone_number)
    if isinstance(command, AgentList) and "state" in rest:
        # the API takes the numeric code; the contract also accepts the status name
        rest = {**rest, "state": command.state_query()}
    request = request_for(type(command), path, rest, app_id=app_id)
    if command.api_headers:
        request = request._replace(headers=tuple(command.api_headers.items()))
    return request


def path_for(
    command_type: type[CommandBase],
    *,
    app_id: str,
    agent_id: str | None = None,
    phone_number: str | None = None,
) -> str:
    """The operation's path with its parameters filled in."""
    return command_type.path_template.format(
        appid=_quoted(app_id),
        agent_id=_quoted(agent_id or ""),
        phone_number=_quoted(phone_number or ""),
    )


@functools.lru_cache(maxsize=65_536)
def _quoted(value: str) -> str:
    """A path segment, percent-encoded; the same few thousand ids recur command after command."""
    return quote(value, PATH_SAFE)


def request_for(
    command_type: type[CommandBase], path: str, rest: Mapping[str, Any], *, app_id: str = ""
) -> ApiRequest:
    """The request of an operation whose path is known; `rest` goes to the body or the query."""
    operation = command_type.tag()
    payload = _in_sdk_order(operation, rest)
    method = command_type.http_method
    if command_type.rest_location == "query":
        return ApiRequest(operation, method, path, encode_query(payload), None, False, app_id)
    body = _encode_json(payload) if payload else None
    json_content = body is not None or operation in JSON_BODY_OPERATIONS
    return ApiRequest(operation, method, path, "", body, json_content, app_id)


def encode_query(params: Mapping[str, Any]) -> str:
    """Form-encode query parameters as the SDK does (httpx value rules, `None` dropped)."""
    return urlencode(list(_query_pairs(params)))


def _in_sdk_order(operation: str, rest: Mapping[str, Any]) -> dict[str, Any]:
    order = SDK_FIELD_ORDER.get(operation, ())
    ordered = {key: rest[key] for key in order if key in rest}
    if len(ordered) < len(rest):
        ordered.update((key, value) for key, value in rest.items() if key not in ordered)
    return ordered


def _query_pairs(params: Mapping[str, Any], prefix: str | None = None) -> Iterator[tuple[str, str]]:
    """Flatten like the SDK's query encoder: lists repeat the key, objects become `key[sub]`."""
    for name, value in params.items():
        key = f"{prefix}[{name}]" if prefix is not None else name
        if value is None:
            continue
        if isinstance(value, dict):
            yield from _query_pairs(value, key)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    yield from _query_pairs(item, key)
                else:
                    yield key, _query_value(item)
        else:
            yield key, _query_value(value)


def _query_value(value: Any) -> str:
    """httpx's rendering of a primitive: JSON booleans, `str()` for everything else."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)
