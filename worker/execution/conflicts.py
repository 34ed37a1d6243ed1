"""A start answered 409: find the agent holding the name, then adopt it, wait for it, or fail.

A holder is adopted (the command `succeeded`, `reconciled`) only on evidence that this command
created it: an earlier attempt of the same command was sent and its outcome is in doubt (the
409 is a `409:repeat`; or the directory records the holder as started by this command's id; or
the holder started after the command was issued, so a run of it before a crash, whose attempt
this process cannot know, may have started it), *and* the holder matches
the command (the same channel; for a call also the same callee and caller). Any other live
holder is someone else's: the command fails with `conflict` and the result names the holder
(`details.holder`), which is left alone.

The API keeps a name taken until its agent has stopped, and stopping happens asynchronously
after the stop request returns. So after an agent.start's 409:

- a live holder (STARTING, RUNNING, RECOVERING) is adopted or is a `conflict`, as above;
- a holder still stopping (a restart right after a stop) is waited for, its status polled with
  backoff inside the command's budget, until it has ended; then the join is sent again and
  starts the new agent;
- a holder that has ended while the name is still taken (the API has not caught up) gets the
  join again after a backoff, `MAX_CATCH_UPS` times; then the name is taken for good (the
  reference's "cannot be used repeatedly"): failed `name_not_reusable`, not retryable, at once
  rather than after the command's whole budget.

Each join can meet a new conflict (another start won the race), so this repeats, at most
`MAX_JOINS` times. The holder is looked for first among the agents the directory knows by the
name (one get), then through the API (`AgentFinder`, one state per query).

A call.start answered 409 is never sent again: a second attempt would dial the callee twice.
Its holder is adopted on the same evidence, the callee and caller read with a call.get.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec

from contracts import CallGet, CallStart, ErrorInfo
from worker.agents.directory import NameDirectory
from worker.agents.lifecycle import RESOLVABLE, Phase, phase
from worker.api.client import ApiResponse
from worker.api.errors import ApiError
from worker.api.models import AgentInfo
from worker.api.policy import Action
from worker.api.requests import ApiRequest, path_for, request_for
from worker.execution.caller import Budget, Caller, Refusal
from worker.execution.lookup import HOLDING, UNSEARCHABLE, AgentFinder, FoundAgent
from worker.execution.outcomes import CommandEndedError, describe

MAX_JOINS = 5
MAX_CATCH_UPS = 2
"""Joins after a backoff once the holder has ended (0.2 + 0.4 s at most by default): the API
may not have freed the name yet; past them it will not (names are not reusable there)."""
GONE = "STOPPED"  # what a holder the API no longer knows (404) has become


class Origin(NamedTuple):
    """The command a start belongs to: its id and when it was issued (its record's time)."""

    command_id: str
    issued_at: float


class Holder(NamedTuple):
    """The agent holding a name, the channel it is known to be in (None: not known), and the
    command the directory says started it (a run of the same command before a crash, say)."""

    found: FoundAgent
    channel: str | None
    started_by: str | None = None

    @property
    def status(self) -> str:
        """Its status as last read."""
        return self.found.status

    def may_be_from(self, origin: Origin) -> bool:
        """Whether the command `origin` may have started it: the directory says so, or it
        started (`start_ts`, whole seconds) no earlier than the command was issued."""
        if self.started_by == origin.command_id:
            return True
        data = self.found.data
        start = data.get("start_ts") if isinstance(data, dict) else None
        return isinstance(start, int | float) and start >= math.floor(origin.issued_at)

    def now(self, found: FoundAgent) -> Holder:
        """The same holder as a newer read shows it."""
        return self._replace(found=found)


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
        origin: Origin,
        budget: Budget,
        observe: Callable[[FoundAgent], None],
    ) -> FoundAgent | ApiResponse:
        """The live agent holding `name`, or the response of a join that started a new one.

        `observe` is told every status read on the way. Raises `CommandEndedError` when the
        holder cannot be found, did not stop within the budget, or a join failed otherwise.
        """
        reply: ApiResponse | Refusal = conflict
        polls = catch_ups = 0
        for joins in range(MAX_JOINS):
            if isinstance(reply, ApiResponse):
                return reply
            holder = await self._holder(
                app_id, name, channel, budget, reply.expect(Action.RECONCILE)
            )
            observe(holder.found)
            waited = False
            while holder.status not in RESOLVABLE and phase(holder.status) < Phase.ENDED:
                polls += 1
                if not await self._caller.pause(polls, budget):
                    raise _still_held(reply.error, holder.found, name)
                holder = holder.now(await self._status(app_id, holder.found.info, budget))
                observe(holder.found)
                waited = True
            if holder.status in RESOLVABLE:
                ours = reply.repeated or holder.may_be_from(origin)
                if ours and holder.channel in (None, channel):
                    return holder.found
                raise _conflict(reply.error, holder, name)
            if joins and not waited:  # ended, yet the name was still taken: let the API catch up
                catch_ups += 1
                if catch_ups > MAX_CATCH_UPS:
                    raise _not_reusable(reply.error, holder.found, name)
                if not await self._caller.pause(catch_ups, budget):
                    raise _still_held(reply.error, holder.found, name)
            reply = await self._caller.perform(join, budget, idempotent=True)
        assert isinstance(reply, Refusal)  # noqa: S101 - a response returned above
        raise _still_held(reply.error, None, name)

    async def call_holder(
        self, conflict: Refusal, command: CallStart, *, origin: Origin, app_id: str, budget: Budget
    ) -> FoundAgent:
        """The live call holding the call's name when this command placed it (call.start);
        raises `CommandEndedError`: `conflict` for anyone else's, `conflict_unresolved` for a
        holder stopping, ended or not found."""
        channel = command.properties.channel
        holder = await self._holder(app_id, command.name, channel, budget, conflict)
        if holder.status not in RESOLVABLE:
            message = (
                f"{conflict.error}; agent {holder.found.info.agent_id} holding the name "
                f"{command.name!r} is {holder.status}, so the call was not placed"
            )
            raise CommandEndedError(
                "failed", describe(conflict.error, code="conflict_unresolved", message=message)
            )
        if conflict.repeated or holder.may_be_from(origin):
            call = await self._call(app_id, holder.found.info.agent_id, budget)
            holder = holder._replace(channel=call.get("channel", holder.channel))
            sip = command.sip
            same_parties = (call.get("to_number"), call.get("from_number")) == (
                sip.to_number,
                sip.from_number,
            )
            if same_parties and holder.channel in (None, channel):
                return holder.found
        raise _conflict(conflict.error, holder, command.name)

    async def _call(self, app_id: str, agent_id: str, budget: Budget) -> dict[str, Any]:
        """The call record of `agent_id` (callee, caller, channel); empty if unreadable."""
        path = path_for(CallGet, app_id=app_id, agent_id=agent_id)
        reply = await self._caller.perform(
            request_for(CallGet, path, {}, app_id=app_id), budget, idempotent=True, lookup=True
        )
        data = reply.data if isinstance(reply, ApiResponse) else None
        return data if isinstance(data, dict) else {}

    async def _holder(
        self, app_id: str, name: str, channel: str, budget: Budget, refusal: Refusal
    ) -> Holder:
        """The agent that holds `name`: the directory's candidate if the API says it still
        may, else the first the API lists in `channel`; the directory's ended one if the API
        lists none. When the API cannot be searched by name and this command's own attempt
        may have created the holder, the outcome is `unknown`: the agent may be running."""
        conflict = refusal.error
        known = self._names.last_of(app_id, name)
        if known is not None and phase(known.status) < Phase.ENDED:
            info = AgentInfo(known.agent_id, known.status, name)
            current = await self._status(app_id, info, budget)
            return Holder(current, known.channel, known.command_id)
        try:
            found = await self._finder.find(app_id, name, budget, statuses=HOLDING, channel=channel)
        except CommandEndedError as ended:
            if not (refusal.repeated and ended.error.code in UNSEARCHABLE):
                raise
            message = (
                f"{conflict}; an earlier attempt of this command may have started the agent "
                f"holding {name!r}, which cannot be found: {ended.error.message}; it may be running"
            )
            raise CommandEndedError(
                "unknown", describe(conflict, code=f"ambiguous_{ended.error.code}", message=message)
            ) from ended
        if found is not None:
            return Holder(found, channel)
        if known is not None:
            info = AgentInfo(known.agent_id, known.status, name)
            return Holder(FoundAgent(info, None), known.channel, known.command_id)
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


def _not_reusable(conflict: ApiError, holder: FoundAgent, name: str) -> CommandEndedError:
    """The holder has ended and the name stays taken: the API does not reuse names."""
    message = (
        f"{conflict}; agent {holder.info.agent_id} that held the name {name!r} has ended "
        f"({holder.status}), yet the name is still refused after {MAX_CATCH_UPS} more joins: "
        "the API does not reuse names ('cannot be used repeatedly'); start with a new name"
    )
    return CommandEndedError(
        "failed", describe(conflict, code="name_not_reusable", message=message, retryable=False)
    )


def _still_held(conflict: ApiError, holder: FoundAgent | None, name: str) -> CommandEndedError:
    """The start gave up: the name stayed taken for the whole budget."""
    who = f"agent {holder.info.agent_id} ({holder.status})" if holder else "an agent"
    message = f"{conflict}; {who} still holds the name {name!r}; the command's budget ran out"
    return CommandEndedError(
        "failed", describe(conflict, code="name_still_held", message=message, retryable=True)
    )


def _conflict(conflict: ApiError, holder: Holder, name: str) -> CommandEndedError:
    """The name is held by an agent this command did not (provably) create: failed, holder
    named and left alone."""
    info = holder.found.info
    where = f" in channel {holder.channel!r}" if holder.channel else ""
    message = (
        f"{conflict}; the name {name!r} is held by agent {info.agent_id} ({holder.status}"
        f"{where}), which this command did not start; it was left alone"
    )
    described = describe(conflict, code="conflict", message=message, retryable=False)
    details = {
        "holder": {"agent_id": info.agent_id, "status": holder.status, "channel": holder.channel}
    }
    return CommandEndedError("failed", _with_details(described, details))


def _with_details(error: ErrorInfo, details: dict[str, Any]) -> ErrorInfo:
    """`error` with `details` added to what the API's body said."""
    body = error.details if isinstance(error.details, dict) else {}
    return msgspec.structs.replace(error, details={**body, **details})
