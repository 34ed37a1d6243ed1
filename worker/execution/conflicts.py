"""An agent.start answered 409: find the agent holding the name, then report it or wait for it.

The API keeps a name taken until its agent has stopped, and stopping happens asynchronously
after the stop request returns. So after a 409:

- a live holder (STARTING, RUNNING, RECOVERING) is the agent the start asked for: the start is
  reconciled to it (its `properties` were not applied);
- a holder still stopping (a restart right after a stop) is waited for, its status polled with
  backoff inside the command's budget, until it has ended; then the join is sent again and
  starts the new agent;
- a holder that has ended while the name is still taken (the API has not caught up) gets the
  join again after a backoff.

Each join can meet a new conflict (another start won the race), so this repeats, at most
`MAX_JOINS` times. The holder is looked for first among the agents the directory knows by the
name (one get), then through the API (`AgentFinder`, one state per query).

A call.start answered 409 is never sent again: a second attempt would dial the callee twice.
A live holder of the call's name is the call asked for (typically placed by an earlier attempt
of the same command, before a crash); anything else leaves the command failed.
"""

from __future__ import annotations

from collections.abc import Callable

from worker.agents.directory import NameDirectory
from worker.agents.lifecycle import RESOLVABLE, Phase, phase
from worker.api.client import ApiResponse
from worker.api.errors import ApiError
from worker.api.models import AgentInfo
from worker.api.policy import Action
from worker.api.requests import ApiRequest
from worker.execution.caller import Budget, Caller, Refusal
from worker.execution.lookup import HOLDING, AgentFinder, FoundAgent
from worker.execution.outcomes import CommandEndedError, describe

MAX_JOINS = 5
GONE = "STOPPED"  # what a holder the API no longer knows (404) has become


class NameConflicts:
    """Settles agent.start conflicts; shared by all commands of a worker."""

    def __init__(self, caller: Caller, finder: AgentFinder, names: NameDirectory) -> None:
        self._caller = caller
        self._finder = finder
        self._names = names

    async def settle(
        self,
        join: ApiRequest,
        conflict: Refusal,
        *,
        app_id: str,
        name: str,
        channel: str,
        budget: Budget,
        observe: Callable[[FoundAgent], None],
    ) -> FoundAgent | ApiResponse:
        """The live agent holding `name`, or the response of a join that started a new one.

        `observe` is told every status read on the way. Raises `CommandEndedError` when the
        holder cannot be found, did not stop within the budget, or a join failed otherwise.
        """
        reply: ApiResponse | Refusal = conflict
        polls = 0
        for joins in range(MAX_JOINS):
            if isinstance(reply, ApiResponse):
                return reply
            holder = await self._holder(
                app_id, name, channel, budget, reply.expect(Action.RECONCILE).error
            )
            observe(holder)
            waited = False
            while holder.status not in RESOLVABLE and phase(holder.status) < Phase.ENDED:
                polls += 1
                if not await self._caller.pause(polls, budget):
                    raise _still_held(reply.error, holder, name)
                holder = await self._status(app_id, holder.info, budget)
                observe(holder)
                waited = True
            if holder.status in RESOLVABLE:
                return holder
            if joins and not waited:  # ended, yet the name was still taken: let the API catch up
                polls += 1
                if not await self._caller.pause(polls, budget):
                    raise _still_held(reply.error, holder, name)
            reply = await self._caller.perform(join, budget, idempotent=True)
        assert isinstance(reply, Refusal)  # noqa: S101 - a response returned above
        raise _still_held(reply.error, None, name)

    async def live_holder(
        self, conflict: ApiError, *, app_id: str, name: str, channel: str, budget: Budget
    ) -> FoundAgent:
        """The live agent holding `name` (call.start); raises `CommandEndedError` when the
        holder is stopping, has ended or cannot be found."""
        holder = await self._holder(app_id, name, channel, budget, conflict)
        if holder.status in RESOLVABLE:
            return holder
        message = (
            f"{conflict}; agent {holder.info.agent_id} holding the name {name!r} is "
            f"{holder.status}, so the call was not placed"
        )
        raise CommandEndedError(
            "failed", describe(conflict, code="conflict_unresolved", message=message)
        )

    async def _holder(
        self, app_id: str, name: str, channel: str, budget: Budget, conflict: ApiError
    ) -> FoundAgent:
        """The agent that holds `name`: the directory's candidate if the API says it still
        may, else the first the API lists; the directory's ended one if the API lists none."""
        known = self._names.last_of(app_id, name)
        if known is not None and phase(known.status) < Phase.ENDED:
            return await self._status(app_id, AgentInfo(known.agent_id, known.status, name), budget)
        found = await self._finder.find(app_id, name, budget, statuses=HOLDING, channel=channel)
        if found is not None:
            return found
        if known is not None:
            return FoundAgent(AgentInfo(known.agent_id, known.status, name), None)
        message = f"{conflict}; no agent called {name!r} was found holding the name"
        raise CommandEndedError(
            "failed", describe(conflict, code="conflict_unresolved", message=message)
        )

    async def _status(self, app_id: str, agent: AgentInfo, budget: Budget) -> FoundAgent:
        """The agent's get now; a 404 means it has exited."""
        found = await self._finder.get(app_id, agent.agent_id, budget)
        if found is None:
            return FoundAgent(AgentInfo(agent.agent_id, GONE, agent.name), None)
        return found


def _still_held(conflict: ApiError, holder: FoundAgent | None, name: str) -> CommandEndedError:
    """The start gave up: the name stayed taken for the whole budget."""
    who = f"agent {holder.info.agent_id} ({holder.status})" if holder else "an agent"
    message = f"{conflict}; {who} still holds the name {name!r}; the command's budget ran out"
    return CommandEndedError(
        "failed", describe(conflict, code="name_still_held", message=message, retryable=True)
    )
