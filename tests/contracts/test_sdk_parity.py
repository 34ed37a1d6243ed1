"""Each documented command maps to the request the official SDK (agora-agents 2.12.0) sends for
the same inputs: same method, same path, and `rest` equal to the SDK's body or query."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from contracts import COMMAND_TYPES, CommandBase, decode_command
from tests.contracts.support import guide_examples

pytestmark = [
    pytest.mark.filterwarnings("ignore:Valid config keys have changed:UserWarning"),
    pytest.mark.filterwarnings(
        "ignore:Support for class-based `config` is deprecated:DeprecationWarning"
    ),
]

BASE_PATH = "/api/conversational-ai-agent"
APP_ID = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
RESOLVED_AGENT_ID = "AGENT-RESOLVED-FROM-NAME"

COMMAND_EXAMPLES = [text for role, _, text in guide_examples() if role == "command"]


def sdk_request(tag: str, agent_id: str, phone_number: str, rest: dict[str, Any]) -> httpx.Request:
    """Ask the SDK to do what the command says; return the one request it sent.

       The transport records the request and answers `{}`
    (`[]` for the phone-number list,
       which the SDK parses as a bare array).
    """
    from agora_agent.client import Agora  # noqa: PLC0415 - optional dev dependency, warns on import

    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        listing = request.method == "GET" and request.url.path.endswith("/v2/phone-numbers")
        body: list[object] | dict[str, object] = [] if listing else {}
        return httpx.Response(200, json=body)

    client = Agora(
        base_url=f"http://sdk.invalid{BASE_PATH}",
        authorization="Basic dTpw",
        username="u",
        password="p",
        httpx_client=httpx.Client(transport=httpx.MockTransport(answer)),
    )
    agents, telephony, numbers = client.agents, client.telephony, client.phone_numbers
    calls: dict[str, Callable[[], object]] = {
        "agent.start": lambda: agents.start(APP_ID, **rest),
        "agent.stop": lambda: agents.stop(APP_ID, agent_id),
        "agent.update": lambda: agents.update(APP_ID, agent_id, **rest),
        "agent.speak": lambda: agents.speak(APP_ID, agent_id, **rest),
        "agent.interrupt": lambda: agents.interrupt(APP_ID, agent_id),
        "agent.think": lambda: client.agent_management.agent_think(APP_ID, agent_id, **rest),
        "agent.get": lambda: agents.get(APP_ID, agent_id),
        "agent.list": lambda: agents.list(APP_ID, **rest),
        "agent.history": lambda: agents.get_history(APP_ID, agent_id),
        "agent.turns": lambda: agents.get_turns(APP_ID, agent_id, **rest),
        "call.start": lambda: telephony.call(APP_ID, **rest),
        "call.hangup": lambda: telephony.hangup(APP_ID, agent_id),
        "call.get": lambda: telephony.get(APP_ID, agent_id),
        "call.list": lambda: telephony.list(APP_ID, **rest),
        "number.add": lambda: numbers.add(**rest),
        "number.get": lambda: numbers.get(phone_number),
        "number.list": numbers.list,
        "number.update": lambda: numbers.update(phone_number, **rest),
        "number.delete": lambda: numbers.delete(phone_number),
    }
    calls[tag]()
    assert len(sent) == 1
    return sent[0]


@pytest.mark.parametrize("text", COMMAND_EXAMPLES)
def test_the_sdk_sends_what_the_command_describes(text: str) -> None:
    """Method and path are the class's; the SDK's body/query equals the decoded `rest`."""
    decoded = decode_command(text)
    command: CommandBase = decoded.command
    cls = type(command)
    agent_id = getattr(command, "agent_id", None) or RESOLVED_AGENT_ID
    phone_number = getattr(command, "phone_number", "")
    request = sdk_request(cls.tag(), agent_id, phone_number, decoded.rest)

    assert request.method == cls.http_method
    expected_path = cls.path_template.format(
        appid=APP_ID, agent_id=agent_id, phone_number=phone_number
    )
    assert request.url.path == BASE_PATH + expected_path
    if cls.rest_location == "body":
        assert (json.loads(request.content) if request.content else {}) == decoded.rest
    else:
        assert dict(request.url.params) == {key: str(value) for key, value in decoded.rest.items()}


def test_every_command_is_covered() -> None:
    """The parity check runs for all 19 commands."""
    tags = sorted(json.loads(text)["command"] for text in COMMAND_EXAMPLES)
    assert tags == sorted(COMMAND_TYPES)
