"""AgentFinder against a scripted API: list pages carrying names, cursors, tenants, retries
and unreadable bodies (the emulator's list items carry no `name`, the real API's may)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import pytest

from worker.agents.directory import MAX_SESSION_SECONDS
from worker.api.client import ApiResponse
from worker.api.errors import ApiError, ApiTimeoutError
from worker.api.observer import NullObserver
from worker.api.requests import ApiRequest
from worker.api.retry import Backoff
from worker.execution.caller import Budget, Caller
from worker.execution.lookup import MAX_PAGES, PAGE_SIZE, AgentFinder
from worker.execution.outcomes import CommandEndedError

NOW = 1_800_000_000.0


class ListedApi:
    """Answers agent.list with `pages` (by cursor, "" first) and agent.get with `agents`."""

    def __init__(self, pages: dict[str, Any], agents: dict[str, Any]) -> None:
        self.pages = pages
        self.agents = agents
        self.requests: list[ApiRequest] = []
        self.failures: dict[str, list[ApiError]] = {}  # by operation, raised in order

    async def send(self, request: ApiRequest, *, time_left: float | None = None) -> ApiResponse:
        del time_left
        self.requests.append(request)
        if self.failures.get(request.operation):
            raise self.failures[request.operation].pop(0)
        if request.operation == "agent.list":
            cursor = dict(parse_qsl(request.query)).get("cursor", "")
            return ApiResponse(200, self.pages[cursor], None)
        return ApiResponse(200, self.agents[request.path.rsplit("/", 1)[-1]], None)

    def calls(self) -> list[tuple[str, str, dict[str, str]]]:
        """(operation, app_id, query) of each request."""
        return [(r.operation, r.app_id, dict(parse_qsl(r.query))) for r in self.requests]


def page(items: list[dict[str, Any]], cursor: str = "") -> dict[str, Any]:
    return {"data": {"count": len(items), "list": items}, "meta": {"cursor": cursor}}


def finder(api: ListedApi) -> AgentFinder:
    async def no_wait(delay: float) -> None:
        del delay

    backoff = Backoff(base=0.1, cap=1.0, quota=1.0, uniform=lambda: 0.0)
    caller = Caller(
        api,
        max_attempts=3,
        backoff=backoff,
        observer=NullObserver(),
        sleep=no_wait,
        clock=lambda: NOW,
    )
    return AgentFinder(caller, clock=lambda: NOW)


def budget() -> Budget:
    return Budget(deadline=NOW + 60)


async def test_named_items_of_other_agents_are_skipped_and_the_next_page_is_read() -> None:
    """An item naming another agent costs no get; one without a name is read; the cursor of
    each page asks for the next."""
    api = ListedApi(
        pages={
            "": page([{"agent_id": "a1", "name": "other"}, {"agent_id": "a2"}], cursor="c2"),
            "c2": page([{"agent_id": "a3", "name": "bot"}]),
        },
        agents={
            "a2": {"agent_id": "a2", "name": "someone", "status": "RUNNING"},
            "a3": {"agent_id": "a3", "name": "bot", "status": "RUNNING"},
        },
    )
    found = await finder(api).find("app-2", "bot", budget(), statuses=("RUNNING",), channel="c")
    assert found is not None
    assert (found.info.agent_id, found.status) == ("a3", "RUNNING")
    first = {"channel": "c", "from_time": str(int(NOW) - MAX_SESSION_SECONDS), "state": "2"}
    assert api.calls() == [
        ("agent.list", "app-2", first | {"limit": str(PAGE_SIZE)}),
        ("agent.get", "app-2", {}),
        ("agent.list", "app-2", first | {"limit": str(PAGE_SIZE), "cursor": "c2"}),
        ("agent.get", "app-2", {}),
    ]
    assert [r.path.rsplit("/", 1)[-1] for r in api.requests if r.operation == "agent.get"] == [
        "a2",
        "a3",
    ]


async def test_an_agent_whose_get_reports_another_status_or_name_is_not_found() -> None:
    """The list is only a hint: the get must still report the name and a wanted status."""
    api = ListedApi(
        pages={"": page([{"agent_id": "a1"}, {"agent_id": "a2"}])},
        agents={
            "a1": {"agent_id": "a1", "name": "bot", "status": "STOPPING"},
            "a2": {"agent_id": "a2", "name": "other", "status": "RUNNING"},
        },
    )
    assert await finder(api).find("app", "bot", budget(), statuses=("RUNNING",)) is None
    assert len(api.requests) == 3


async def test_a_lookup_read_that_timed_out_is_sent_again() -> None:
    """Lookups only read: a timeout is retried, never left `unknown`."""
    api = ListedApi(
        pages={"": page([{"agent_id": "a1"}])},
        agents={"a1": {"agent_id": "a1", "name": "bot", "status": "RUNNING"}},
    )
    api.failures = {
        "agent.list": [ApiTimeoutError("agent.list", "slow")],
        "agent.get": [ApiTimeoutError("agent.get", "slow")],
    }
    found = await finder(api).find("app", "bot", budget(), statuses=("RUNNING",))
    assert found is not None
    assert [r.operation for r in api.requests] == ["agent.list"] * 2 + ["agent.get"] * 2


@pytest.mark.parametrize(
    ("pages", "agents", "operation"),
    [
        ({"": {"data": {"list": "not a list"}}}, {}, "agent.list"),
        ({"": page([{"agent_id": "a1"}])}, {"a1": {"status": "RUNNING"}}, "agent.get"),
    ],
)
async def test_an_unreadable_answer_ends_the_lookup_naming_the_operation(
    pages: dict[str, Any], agents: dict[str, Any], operation: str
) -> None:
    api = ListedApi(pages=pages, agents=agents)
    with pytest.raises(CommandEndedError) as ended:
        await finder(api).find("app", "bot", budget(), statuses=("RUNNING",))
    assert ended.value.error.code == "invalid_response"
    assert ended.value.error.message.startswith(f"{operation} answered a body")


async def test_an_agent_not_among_the_pages_read_is_not_reported_absent() -> None:
    """More pages of other agents than a lookup reads (as with a thousand running agents): the
    lookup says it stopped, which is retryable, rather than that the agent does not exist."""
    others = [{"agent_id": f"x{n}", "name": f"other-{n}"} for n in range(PAGE_SIZE)]
    pages = {("" if n == 0 else f"c{n}"): page(others, cursor=f"c{n + 1}") for n in range(100)}
    api = ListedApi(pages, agents={})
    with pytest.raises(CommandEndedError) as ended:
        await finder(api).find("app", "bot", budget(), statuses=("RUNNING",))
    assert ended.value.error.code == "lookup_budget_exhausted"
    assert ended.value.error.retryable
    assert [operation for operation, _, _ in api.calls()] == ["agent.list"] * MAX_PAGES
