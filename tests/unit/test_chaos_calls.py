"""The chaos suite attributes each request of the emulator's log to the command it served."""

from __future__ import annotations

from typing import Any

from chaos.calls import Call, attribute
from devtools.workload import lifecycles
from tests.unit.chaos_records import result

PROJECT = "/api/conversational-ai-agent/v2/projects/app"
# two agents, x-0 and x-1: start, speak, call, speak, stop each (ids x-K-STEP)
SENT = lifecycles("x", 2, 5)


def logged(operation: str, path: str, body: Any, status: int = 200) -> dict[str, Any]:
    """One entry as `GET /_emulator/requests` returns it (`timed` sets its time)."""
    return {
        "operation": operation,
        "method": "POST",
        "path": PROJECT + path,
        "query": "",
        "body": body,
        "status": status,
    }


def timed(*entries: dict[str, Any]) -> list[dict[str, Any]]:
    """The log of `entries`, the n-th logged at t = n."""
    return [entry | {"timestamp": float(n)} for n, entry in enumerate(entries, start=1)]


def test_each_request_is_charged_to_its_command_by_id_or_by_its_agent_and_reads_to_none() -> None:
    log = timed(
        logged("agent.start", "/join", {"name": "x-1", "properties": {}}),
        logged("agent.speak", "/agents/A1/speak", {"text": "x-1-1"}, 503),
        logged("agent.get", "/agents/A1", None),  # a read serves no command
        logged("call.start", "/call", {"name": "x-1-2", "sip": {}}),
        logged("agent.speak", "/agents/A1/speak", {"text": "someone else's"}),
        logged("agent.stop", "/agents/A0/leave", None, 0),
        logged("agent.stop", "/agents/A1/leave", None, 404),
        logged("agent.stop", "/agents/A9/leave", None),  # an agent no result names
    )
    results = [
        result("x-0-4", agent_id="A0", name="x-0"),
        result("x-1-4", agent_id="A1", name="x-1"),
    ]
    assert attribute(log, SENT, results) == [
        Call("x-1-0", 1.0, 200),
        Call("x-1-1", 2.0, 503),
        Call("x-1-2", 4.0, 200),
        Call("x-0-4", 6.0, 0),
        Call("x-1-4", 7.0, 404),
    ]


def test_requests_come_in_the_order_they_arrived_not_the_order_they_were_answered() -> None:
    late = logged("agent.start", "/join", {"name": "x-0"}) | {"timestamp": 1.0}  # answered late
    sooner = logged("agent.speak", "/agents/A0/speak", {"text": "x-0-1"}) | {"timestamp": 2.0}
    assert attribute([sooner, late], SENT, []) == [Call("x-0-0", 1.0, 200), Call("x-0-1", 2.0, 200)]
