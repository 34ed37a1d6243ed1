"""Finding an agent by its name through the API.

The list endpoint does not document a `name` field, so each candidate is read with a get (whose
response carries `name`); a list item that does carry a different `name` is skipped without one.
The API documents one `state` per list query, so the search asks for one status at a time, in
the order given, within the API's maximum session lifetime, optionally in one channel, in at
most `MAX_PAGES` pages per status; a candidate counts only if its get still reports one of the
wanted statuses. This is the fallback when the name directory does not know a name, and how an
agent.start that got 409 finds the agent that holds its name.

The search is bounded: at most `MAX_GETS` gets and `MAX_PAGES` pages per status per lookup
(`lookup_budget_exhausted`, retryable, past them: a search that would cost thousands of requests
draws 429s for every command; an agent not among the pages read is not known to be absent), and it
stops at the first get without a `name` (`name_unknown`, not retryable): the SDK's model does
not define the field, and an API that leaves it out cannot be searched by name at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from contracts import AGENT_STATUS_CODES, AgentGet, AgentList, ErrorInfo
from worker.agents.directory import MAX_SESSION_SECONDS
from worker.api.client import ApiResponse
from worker.api.models import AgentInfo, AgentPage
from worker.api.requests import ApiRequest, path_for, request_for
from worker.execution.caller import Budget, Caller
from worker.execution.outcomes import CommandEndedError, read_as

LIVE = ("RUNNING", "STARTING")
"""What a name lookup searches: agents a command can address (the SDK enum has no RECOVERING)."""
HOLDING = ("RUNNING", "STARTING", "STOPPING", "IDLE")
"""What holds a name against a new start: everything the API has not finished stopping."""
PAGE_SIZE = 50
MAX_PAGES = 10
MAX_GETS = 20
UNSEARCHABLE = frozenset({"name_unknown", "lookup_budget_exhausted"})
"""Why a lookup ended without an answer: nothing is known about the agent, either way."""


class FoundAgent(NamedTuple):
    """An agent found by name: its typed view and the get response as the API sent it."""

    info: AgentInfo
    data: Any

    @property
    def status(self) -> str:
        """The status its get reported (RUNNING when the API left it out)."""
        return self.info.status or "RUNNING"


class AgentFinder:
    """Looks agents up by name with list and get requests."""

    def __init__(self, caller: Caller, *, clock: Callable[[], float] = time.time) -> None:
        self._caller = caller
        self._clock = clock

    async def find(
        self,
        app_id: str,
        name: str,
        budget: Budget,
        *,
        statuses: Sequence[str] = LIVE,
        channel: str | None = None,
    ) -> FoundAgent | None:
        """The first agent called `name` in `app_id` (and `channel`) in one of `statuses`.

        Raises `CommandEndedError`: `name_unknown` when the API's gets carry no names,
        `lookup_budget_exhausted` past `MAX_GETS` gets."""
        gets = [0]
        for status in statuses:
            found = await self._find_in(
                app_id, name, budget, status=status, wanted=statuses, channel=channel, gets=gets
            )
            if found is not None:
                return found
        return None

    async def get(self, app_id: str, agent_id: str, budget: Budget) -> FoundAgent | None:
        """The agent's get response, or None when the API no longer knows it."""
        path = path_for(AgentGet, app_id=app_id, agent_id=agent_id)
        request = request_for(AgentGet, path, {}, app_id=app_id)
        try:
            response = await self._read(request, budget)
        except CommandEndedError as ended:
            if ended.error.http_status == 404:
                return None
            raise
        return FoundAgent(read_as(response.data, AgentInfo, "agent.get"), response.data)

    async def _find_in(
        self,
        app_id: str,
        name: str,
        budget: Budget,
        *,
        status: str,
        wanted: Sequence[str],
        channel: str | None,
        gets: list[int],
    ) -> FoundAgent | None:
        """Search the list pages of agents in `status` (one state per query, as documented)."""
        list_path = path_for(AgentList, app_id=app_id)
        query: dict[str, Any] = {
            "channel": channel,
            "from_time": int(self._clock()) - MAX_SESSION_SECONDS,
            "state": str(AGENT_STATUS_CODES[status]),
            "limit": PAGE_SIZE,
        }
        for _ in range(MAX_PAGES):
            request = request_for(AgentList, list_path, query, app_id=app_id)
            response = await self._read(request, budget)
            page = read_as(response.data, AgentPage, "agent.list")
            for item in page.data.items if page.data else ():
                if item.name is not None and item.name != name:
                    continue
                gets[0] += 1
                if gets[0] > MAX_GETS:
                    raise _ended(
                        "lookup_budget_exhausted",
                        f"no agent called {name!r} among the first {MAX_GETS} agents read "
                        f"in app {app_id}; the lookup stopped there",
                        retryable=True,
                    )
                found = await self.get(app_id, item.agent_id, budget)
                if found is not None and found.info.name is None:
                    raise _ended(
                        "name_unknown",
                        f"the API's agent.get does not report names in app {app_id}, so no "
                        f"agent can be found by the name {name!r}; address it by agent_id",
                        retryable=False,
                    )
                if found is not None and found.info.name == name and found.status in wanted:
                    return found
            cursor = page.meta.cursor if page.meta else None
            if not cursor:
                return None
            query["cursor"] = cursor
        raise _ended(
            "lookup_budget_exhausted",
            f"no agent called {name!r} among the first {MAX_PAGES * PAGE_SIZE} {status} agents "
            f"listed in app {app_id}; more are listed, so the lookup cannot say it is absent",
            retryable=True,
        )

    async def _read(self, request: ApiRequest, budget: Budget) -> ApiResponse:
        reply = await self._caller.perform(request, budget, idempotent=True, lookup=True)
        assert isinstance(reply, ApiResponse)  # noqa: S101 - no policy row gives a read a Refusal
        return reply


def _ended(code: str, message: str, *, retryable: bool) -> CommandEndedError:
    return CommandEndedError("failed", ErrorInfo(code=code, message=message, retryable=retryable))
