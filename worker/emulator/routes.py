"""The 19 operations of the ConvoAI REST API as the emulator serves them.

Paths are relative to the base URL (`/api/conversational-ai-agent`, or
`/cn/api/conversational-ai-agent` for the CN area). `family` selects the error-body shape;
`status` is the documented success status (201 for add, 204 for delete).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from worker.emulator.errors import Family
from worker.emulator.state import EmulatorState


class Arguments(NamedTuple):
    """What an operation reads from a request."""

    path: Mapping[str, str]
    query: Mapping[str, str]
    body: Any  # the decoded JSON body, None when there is none


# (state, arguments) -> response payload (ignored for 204)
Operation = Callable[[EmulatorState, Arguments], Any]


class Route(NamedTuple):
    """One API endpoint."""

    operation: str
    method: str
    path: str
    family: Family
    status: int
    perform: Operation


# fmt: off
ROUTES: tuple[Route, ...] = (
    Route(
        "agent.start", "POST", "/v2/projects/{appid}/join", "agent", 200,
        lambda s, a: s.start_agent(a.path["appid"], a.body),
    ),
    Route(
        "agent.list", "GET", "/v2/projects/{appid}/agents", "agent", 200,
        lambda s, a: s.list_agents(a.path["appid"], a.query),
    ),
    Route(
        "agent.get", "GET", "/v2/projects/{appid}/agents/{agent_id}", "agent", 200,
        lambda s, a: s.get_agent(a.path["appid"], a.path["agent_id"]),
    ),
    Route(
        "agent.history", "GET", "/v2/projects/{appid}/agents/{agent_id}/history", "agent", 200,
        lambda s, a: s.agent_history(a.path["appid"], a.path["agent_id"]),
    ),
    Route(
        "agent.turns", "GET", "/v2/projects/{appid}/agents/{agent_id}/turns", "agent", 200,
        lambda s, a: s.agent_turns(a.path["appid"], a.path["agent_id"], a.query),
    ),
    Route(
        "agent.stop", "POST", "/v2/projects/{appid}/agents/{agent_id}/leave", "agent", 200,
        lambda s, a: s.stop_agent(a.path["appid"], a.path["agent_id"]),
    ),
    Route(
        "agent.update", "POST", "/v2/projects/{appid}/agents/{agent_id}/update", "agent", 200,
        lambda s, a: s.update_agent(a.path["appid"], a.path["agent_id"], a.body),
    ),
    Route(
        "agent.speak", "POST", "/v2/projects/{appid}/agents/{agent_id}/speak", "agent", 200,
        lambda s, a: s.speak(a.path["appid"], a.path["agent_id"], a.body),
    ),
    Route(
        "agent.interrupt", "POST", "/v2/projects/{appid}/agents/{agent_id}/interrupt", "agent",
        200, lambda s, a: s.interrupt(a.path["appid"], a.path["agent_id"], a.body),
    ),
    Route(
        "agent.think", "POST", "/v2/projects/{appid}/agents/{agent_id}/think", "agent", 200,
        lambda s, a: s.think(a.path["appid"], a.path["agent_id"], a.body),
    ),
    Route(
        "call.list", "GET", "/v2/projects/{appid}/call", "telephony", 200,
        lambda s, a: s.list_calls(a.path["appid"], a.query),
    ),
    Route(
        "call.start", "POST", "/v2/projects/{appid}/call", "telephony", 200,
        lambda s, a: s.start_call(a.path["appid"], a.body),
    ),
    Route(
        "call.get", "GET", "/v2/projects/{appid}/calls/{agent_id}", "telephony", 200,
        lambda s, a: s.get_call(a.path["appid"], a.path["agent_id"]),
    ),
    Route(
        "call.hangup", "POST", "/v2/projects/{appid}/calls/{agent_id}/hangup", "telephony", 200,
        lambda s, a: s.hangup(a.path["appid"], a.path["agent_id"]),
    ),
    Route(
        "number.list", "GET", "/v2/phone-numbers", "telephony", 200,
        lambda s, _: s.numbers.list(),
    ),
    Route(
        "number.add", "POST", "/v2/phone-numbers", "telephony", 201,
        lambda s, a: s.numbers.add(a.body),
    ),
    Route(
        "number.get", "GET", "/v2/phone-numbers/{phone_number}", "telephony", 200,
        lambda s, a: s.numbers.get(a.path["phone_number"]),
    ),
    Route(
        "number.delete", "DELETE", "/v2/phone-numbers/{phone_number}", "telephony", 204,
        lambda s, a: s.numbers.delete(a.path["phone_number"]),
    ),
    Route(
        "number.update", "PATCH", "/v2/phone-numbers/{phone_number}", "telephony", 200,
        lambda s, a: s.numbers.update(a.path["phone_number"], a.body),
    ),
)
# fmt: on
