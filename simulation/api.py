"""The ConvoAI API inside the simulation: the emulator's rules, no HTTP, faults on a schedule.

Requests go straight to the emulator's state (`worker.emulator.routes`), so agents start, stop,
hold their names and answer 409 and 404 as the emulator does, on virtual time. What reaches the
API is logged per member: the operation, the command it serves and whether the API acted on it
(an injected 429 or 5xx acts on nothing; a timeout acts and loses the answer). A crashed member's
requests end at once, as its process is gone.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Self
from urllib.parse import parse_qsl

import msgspec

from worker.api.client import ApiResponse
from worker.api.errors import ApiConnectError, ApiStatusError, ApiTimeoutError
from worker.api.requests import ApiRequest
from worker.emulator.errors import EmulatedError
from worker.emulator.routes import ROUTES, Arguments, Route
from worker.emulator.state import EmulatorState

AGENT_PATH = re.compile(r"/(?:agents|calls)/(?P<agent_id>[^/]+)")


def _pattern(route: Route) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", route.path) + "$")


_ROUTES = [(route, _pattern(route)) for route in ROUTES]


class Call(NamedTuple):
    """One request as the API saw it."""

    at: float
    member: str
    operation: str
    marker: str | None  # the command id a speak, think or call carries, the name of a start
    agent_id: str | None
    acted: bool  # whether the API performed it (an injected 429 or 5xx did not)


@dataclass
class ApiFaults:
    """What the API does to requests right now (the schedule changes it over time)."""

    latency: float = 0.02
    server_errors: float = 0.0  # share of requests answered 503 without acting
    throttled: float = 0.0  # share answered 429 (Retry-After 1) without acting
    timeouts: float = 0.0  # share that act and then never answer
    refused: float = 0.0  # share whose connection is refused


@dataclass
class SimulatedApi:
    """The API all members share."""

    clock: Callable[[], float]
    random: Callable[[], float]
    timeout: float
    faults: ApiFaults = field(default_factory=ApiFaults)
    calls: list[Call] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # agent id -> name it was started with

    def __post_init__(self) -> None:
        ids = itertools.count(1)
        self.state = EmulatorState(
            max_agents_per_app=1_000_000, clock=self.clock, new_id=lambda: f"A{next(ids):08d}"
        )
        self._request_ids = 0

    def member(self, name: str) -> MemberApi:
        """The API as one member's process sees it."""
        return MemberApi(self, name)

    async def send(self, member: str, request: ApiRequest) -> ApiResponse:
        """Answer one request like the API, with the faults of the moment."""
        faults = self.faults
        draw = self.random()
        if draw < faults.refused:
            raise ApiConnectError(request.operation, "connection refused (simulated)")
        route, arguments = _route(request)
        body = arguments.body
        agent_id = arguments.path.get("agent_id")
        marker = _marker(request.operation, body)
        if draw < faults.refused + faults.throttled:
            self._log(member, request, marker, agent_id, acted=False)
            raise ApiStatusError(request.operation, 429, body={}, retry_after=1.0)
        if draw < faults.refused + faults.throttled + faults.server_errors:
            self._log(member, request, marker, agent_id, acted=False)
            raise ApiStatusError(request.operation, 503, body={"detail": "simulated"})
        self._log(member, request, marker, agent_id, acted=True)
        try:
            outcome: Any = route.perform(self.state, arguments)
        except EmulatedError as error:
            outcome = error
        if draw < faults.refused + faults.throttled + faults.server_errors + faults.timeouts:
            await asyncio.sleep(self.timeout)
            raise ApiTimeoutError(request.operation, "no response before the timeout")
        await asyncio.sleep(faults.latency)
        self._request_ids += 1
        request_id = f"sim-{self._request_ids}"
        if isinstance(outcome, EmulatedError):
            raise ApiStatusError(
                request.operation,
                outcome.status_in(route.family),
                body=outcome.body(route.family),
                request_id=request_id,
            )
        if request.operation in ("agent.start", "call.start") and isinstance(outcome, dict):
            started = outcome.get("agent_id")
            if isinstance(started, str) and isinstance(body, dict):
                self.names[started] = str(body.get("name"))
        return ApiResponse(route.status, outcome if route.status != 204 else None, request_id)

    def _log(
        self,
        member: str,
        request: ApiRequest,
        marker: str | None,
        agent_id: str | None,
        *,
        acted: bool,
    ) -> None:
        self.calls.append(Call(self.clock(), member, request.operation, marker, agent_id, acted))


class MemberApi:
    """One member's client: an `ApiSender` and its async context (the worker's API factory)."""

    def __init__(self, api: SimulatedApi, member: str) -> None:
        self._api = api
        self._member = member
        self.dead = False

    async def send(self, request: ApiRequest, *, time_left: float | None = None) -> ApiResponse:
        """Send once; a dead member's request never leaves its (gone) process."""
        del time_left
        if self.dead:
            raise ApiConnectError(request.operation, "the process is gone (simulated crash)")
        return await self._api.send(self._member, request)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def _route(request: ApiRequest) -> tuple[Route, Arguments]:
    for route, pattern in _ROUTES:
        if route.method != request.method:
            continue
        found = pattern.match(request.path)
        if found is not None:
            body = msgspec.json.decode(request.body) if request.body else None
            return route, Arguments(found.groupdict(), dict(parse_qsl(request.query)), body)
    raise LookupError(f"no route for {request.method} {request.path}")


def _marker(operation: str, body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    if operation in ("agent.speak", "agent.think"):
        text = body.get("text")
        return text if isinstance(text, str) else None
    if operation in ("agent.start", "call.start"):
        name = body.get("name")
        return name if isinstance(name, str) else None
    return None
