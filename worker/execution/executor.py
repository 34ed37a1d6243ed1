"""One decoded command, executed end to end: the same code for the worker and for `exec`.

`Executor.execute` resolves an agent name to an id, builds the request the SDK would send,
performs it under the outcome policy and the command's deadline, settles a conflicting start
(`worker.execution.conflicts`), and returns exactly one `ResultEvent` plus the agent-state
changes the command observed. Command-level problems (API refusals, exhausted retries, unknown
names, expiry) become the result's outcome; only cancellation propagates.

What the commands tell the lifecycle model: a start reports the new agent (STARTING or the
status the API answered); a stop or hang-up only makes the agent STOPPING (the API stops it
asynchronously; STOPPED comes from a webhook, an agent.get or the reconciler); a 404 on stop,
hang-up or number delete is `already_gone` only for a target known to have existed (the
directory knows the agent under the command's own App ID, or an earlier attempt of the command
may have removed it), and `failed`/`not_found` otherwise, with no state event for an id never
seen: another tenant's agent id is one this tenant never had.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, TypeVar

import msgspec
import structlog

from contracts import (
    AgentCommand,
    AgentGet,
    AgentList,
    AgentStart,
    AgentStateEvent,
    AgentStop,
    AgentTurns,
    AgentUpdate,
    CallHangup,
    CallStart,
    Command,
    DecodedCommand,
    ErrorInfo,
    NumberAdd,
    NumberDelete,
    NumberGet,
    Outcome,
    ResultEvent,
)
from worker.agents.directory import NameDirectory
from worker.api.client import ApiResponse
from worker.api.headers import ExtraHeaders
from worker.api.models import AgentCreated, AgentInfo, AgentPage, CallCreated, view
from worker.api.observer import ApiObserver, NullObserver
from worker.api.policy import Action
from worker.api.requests import ApiRequest, build_request, path_for, request_for
from worker.api.retry import Backoff
from worker.api.tenants import Tenants
from worker.execution.caller import ApiSender, Budget, Caller, Progress, Refusal
from worker.execution.conflicts import NameConflicts, Origin
from worker.execution.lookup import UNSEARCHABLE, AgentFinder, FoundAgent
from worker.execution.outcomes import CommandEndedError, describe
from worker.execution.pages import Pages
from worker.settings import Settings

log = structlog.get_logger(__name__)
T = TypeVar("T", bound=msgspec.Struct)

AFTER_THE_END = (AgentStop, AgentGet, AgentTurns)
"""Commands addressed by name that may reach an agent that is stopping or has stopped."""
STARTING = "STARTING"  # also the status of a call's agent: the call response has none
STOPPING = "STOPPING"
STOPPED = "STOPPED"


class Execution(NamedTuple):
    """What one command produced: its final result and the agent-state changes it caused."""

    result: ResultEvent
    state_events: list[AgentStateEvent]


@dataclass(slots=True)
class _Command:
    """One command while it runs."""

    command: Command
    rest: dict[str, Any]
    app_id: str
    budget: Budget
    origin: Origin
    agent_id: str | None = None
    name: str | None = None
    request: ApiRequest | None = None
    reconciled: bool = False
    already_gone: bool = False
    events: list[AgentStateEvent] = field(default_factory=list)


Reply = ApiResponse | Refusal
Handler = Callable[[_Command, Reply], Awaitable[Any]]


class Executor:
    """Executes decoded commands against the API; one instance serves the whole worker."""

    def __init__(
        self,
        client: ApiSender,
        settings: Settings,
        names: NameDirectory,
        *,
        observer: ApiObserver | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
        tenants: Tenants | None = None,
    ) -> None:
        """`tenants` decides which App IDs may be served (from `settings` by default)."""
        self._settings = settings
        self._tenants = tenants or Tenants.from_settings(settings)
        self._headers = ExtraHeaders.from_settings(settings)
        self._names = names
        self._clock = clock
        self._caller = Caller(
            client,
            max_attempts=settings.api_max_attempts,
            backoff=backoff or Backoff.from_settings(settings),
            observer=observer or NullObserver(),
            sleep=sleep,
            clock=clock,
        )
        self._finder = AgentFinder(self._caller, clock=clock)
        self._conflicts = NameConflicts(self._caller, self._finder, names)
        self._pages = Pages(
            self._caller, max_pages=settings.max_list_pages, max_bytes=settings.max_result_bytes
        )
        self._handlers: dict[type[Any], Handler] = {
            AgentStart: self._started,
            AgentStop: self._stopped,
            CallHangup: self._stopped,
            AgentGet: self._observed,
            AgentUpdate: self._observed,
            AgentList: self._listed,
            CallStart: self._called,
            NumberAdd: self._number_added,
            NumberDelete: self._number_deleted,
        }

    async def execute(
        self, decoded: DecodedCommand, *, received_at: datetime, progress: Progress | None = None
    ) -> Execution:
        """Run the command to its one final outcome; raises for no command-level problem.

        `progress` lets the caller see, if it has to interrupt the command, whether a request
        that must not be repeated may already have reached the API.
        """
        job = self._command(decoded, received_at, progress)
        data: Any = None
        outcome: Outcome = "succeeded"
        error: ErrorInfo | None = None
        try:
            data = await self._run(job)
        except CommandEndedError as ended:
            outcome, error = ended.outcome, ended.error
        # any other exception is a bug: the pipeline contains it to this record
        # (`worker.pipeline.processor`: an `internal_error` result and a dead letter)
        return Execution(self._result(job, received_at, outcome, data, error), job.events)

    def interrupted(
        self, decoded: DecodedCommand, *, received_at: datetime, progress: Progress
    ) -> Execution:
        """The `unknown` result of a command stopped while its request may have reached the API.

        The pipeline interrupts commands still running when their partition must be released;
        a non-idempotent request then must not be sent again by the next owner.
        """
        job = self._command(decoded, received_at, progress)
        error = ErrorInfo(
            code="ambiguous_interrupted",
            message=(
                f"{decoded.command.tag()} was interrupted while its request may have reached "
                "the API (the worker released the partition); it is not sent again"
            ),
        )
        return Execution(self._result(job, received_at, "unknown", None, error), [])

    async def read_status(self, app_id: str, agent_id: str) -> str | None:
        """The agent's status as the API reports it now (STOPPED when the API no longer knows
        it), None when it cannot tell; for the reconciler, which publishes what it finds."""
        budget = Budget(self._clock() + self._settings.command_timeout_seconds)
        try:
            found = await self._finder.get(app_id, agent_id, budget)
        except CommandEndedError as ended:
            log.info("agent_status_unknown", agent_id=agent_id, error=ended.error.code)
            return None
        return STOPPED if found is None else found.info.status

    def _command(
        self, decoded: DecodedCommand, received_at: datetime, progress: Progress | None
    ) -> _Command:
        command = decoded.command
        # Without `expires_at` only the retry budget is bounded, from when execution starts: a
        # backlog that waited out an outage must still run (an agent.stop above all).
        deadline = command.expires_at or datetime.fromtimestamp(self._clock(), UTC) + timedelta(
            seconds=self._settings.command_timeout_seconds
        )
        return _Command(
            command=command,
            rest=decoded.rest,
            app_id=command.app_id or self._settings.app_id,
            budget=Budget(deadline.timestamp(), progress),
            origin=Origin(command.id, received_at.timestamp()),
            agent_id=getattr(command, "agent_id", None),
            name=getattr(command, "name", None),
        )

    async def _run(self, job: _Command) -> Any:
        command = job.command
        if not job.app_id and "{appid}" in command.path_template:
            raise CommandEndedError(
                "failed",
                ErrorInfo(
                    code="missing_app_id",
                    message="the command has no app_id and CONVOAI_APP_ID is not set",
                ),
            )
        refusal = self._tenants.refusal(job.app_id)
        if refusal is not None:  # another tenant's command: it must never reach the API
            raise CommandEndedError(
                "rejected", ErrorInfo(code="app_id_not_allowed", message=refusal)
            )
        refusal = self._headers.refusal(command.api_headers)
        if refusal is not None:  # a header the operator did not allow: never sent
            raise CommandEndedError(
                "rejected", ErrorInfo(code="header_not_allowed", message=refusal)
            )
        if isinstance(command, AgentCommand) and command.name is not None and not job.agent_id:
            job.agent_id = await self._resolve(job, command.name)
        job.request = build_request(
            command,
            job.rest,
            app_id=job.app_id,
            agent_id=job.agent_id,
            phone_number=getattr(command, "phone_number", None),
        )
        reply = await self._caller.perform(job.request, job.budget, idempotent=command.idempotent)
        reply = await self._pages.complete(command, job.request, reply, job.budget)
        handler = self._handlers.get(type(command), self._plain)
        return await handler(job, reply)

    async def _resolve(self, job: _Command, name: str) -> str:
        """The id of the live agent called `name`: from the directory, else from the API.

        Commands that make sense for an agent that has ended (`AFTER_THE_END`) take the newest
        agent the directory knows by that name when none is live: a stop then reports it
        `already_gone`, a get or turns query reads the session that ended.
        """
        agent_id = self._names.resolve(job.app_id, name)
        if agent_id is not None:
            return agent_id
        found = await self._finder.find(job.app_id, name, job.budget)
        if found is not None:
            self._saw(job, found)
            return found.info.agent_id
        last = self._names.last_of(job.app_id, name)
        if isinstance(job.command, AFTER_THE_END) and last is not None:
            return last.agent_id
        raise CommandEndedError(
            "failed",
            ErrorInfo(
                code="agent_not_found",
                message=f"no live agent is called {name!r} in app {job.app_id}",
            ),
        )

    # ---------------------------------------------------------------- per-command handlers

    async def _plain(self, job: _Command, reply: Reply) -> Any:
        """The response body."""
        del job
        return _data(reply)

    async def _started(self, job: _Command, reply: Reply) -> Any:
        """agent.start: record the new agent; after a 409, settle with the name's holder."""
        command = job.command
        assert isinstance(command, AgentStart)  # noqa: S101 - dispatched by type
        assert job.request is not None  # noqa: S101 - set before the first request
        if isinstance(reply, Refusal):
            settled = await self._conflicts.settle(
                job.request,
                reply.expect(Action.RECONCILE),
                app_id=job.app_id,
                name=command.name,
                channel=command.properties.channel,
                origin=job.origin,
                budget=job.budget,
                observe=lambda found: self._saw(job, found),
            )
            if isinstance(settled, FoundAgent):  # a live agent holds the name: report it
                job.agent_id, job.reconciled = settled.info.agent_id, True
                self._saw(job, settled, ours=True)
                return settled.data
            reply = settled
        created = _typed(reply, AgentCreated)
        if created is None:  # it ran, but the answer has no agent id: find it by its name
            return await self._started_unseen(job, command, reply)
        job.agent_id = created.agent_id
        properties = command.properties
        self._emit(
            job,
            created.agent_id,
            created.status or STARTING,
            channel=properties.channel,
            labels=_labels(properties.labels),
            ours=True,
        )
        return reply.data

    async def _started_unseen(self, job: _Command, command: AgentStart, reply: ApiResponse) -> Any:
        """agent.start answered 2xx without an agent id: the live agent of that name in the
        channel is the one it started (the name was free, so no other holds it), else `unknown`."""
        channel = command.properties.channel
        why = ""
        try:
            found = await self._finder.find(job.app_id, command.name, job.budget, channel=channel)
        except CommandEndedError as ended:
            if ended.error.code not in UNSEARCHABLE:
                raise
            found, why = None, f" ({ended.error.message})"
        if found is None:
            raise CommandEndedError(
                "unknown",
                ErrorInfo(
                    code="ambiguous_no_agent_id",
                    message=(
                        f"agent.start answered {reply.status} without an agent id and no live "
                        f"agent called {command.name!r} was found in channel {channel!r}{why}: "
                        "the agent may be running"
                    ),
                    request_id=reply.request_id,
                ),
            )
        job.agent_id, job.reconciled = found.info.agent_id, True
        self._saw(job, found, ours=True)
        return found.data

    async def _stopped(self, job: _Command, reply: Reply) -> Any:
        """agent.stop / call.hangup: the agent is STOPPING, or already gone (404)."""
        agent_id = job.agent_id
        assert agent_id is not None  # noqa: S101 - both commands address an agent
        if isinstance(reply, Refusal):
            self._gone(job, reply, known=self._names.state(job.app_id, agent_id) is not None)
        self._emit(job, agent_id, STOPPING)  # a later state already known wins over this
        return _data(reply)

    async def _number_deleted(self, job: _Command, reply: Reply) -> Any:
        """number.delete: a 404 is `already_gone` only when our earlier attempt may have run."""
        if isinstance(reply, Refusal):
            self._gone(job, reply, known=False)
        return _data(reply)

    def _gone(self, job: _Command, reply: Refusal, *, known: bool) -> None:
        """A 404 on a stop, hang-up or delete: done if the target existed, else not found."""
        reply.expect(Action.GONE)
        if not (known or reply.repeated):
            target = job.agent_id or getattr(job.command, "phone_number", None)
            message = f"{reply.error}; {target} is not known to have existed, so nothing changed"
            raise CommandEndedError(
                "failed", describe(reply.error, code="not_found", message=message)
            )
        job.already_gone = True

    async def _observed(self, job: _Command, reply: Reply) -> Any:
        """agent.get / agent.update: report a status the directory does not know yet."""
        data = _data(reply)
        info = _typed(reply, AgentInfo)
        if info is not None and info.status:
            self._emit(job, info.agent_id, info.status, name=info.name)
        return data

    async def _listed(self, job: _Command, reply: Reply) -> Any:
        """agent.list: report the agents the directory knows whose status changed."""
        data = _data(reply)
        page = _typed(reply, AgentPage) or AgentPage()
        for item in page.data.items if page.data else ():
            if item.status and self._names.state(job.app_id, item.agent_id) is not None:
                self._emit(job, item.agent_id, item.status, name=item.name)
        return data

    async def _called(self, job: _Command, reply: Reply) -> Any:
        """call.start: the call created an agent that now holds the call's name; after a
        409, the holder is this call only on evidence (`worker.execution.conflicts`): then it
        is reconciled, else a `conflict`; never dialled again."""
        command = job.command
        assert isinstance(command, CallStart)  # noqa: S101 - dispatched by type
        channel = command.properties.channel
        if isinstance(reply, Refusal):
            holder = await self._conflicts.call_holder(
                reply.expect(Action.RECONCILE),
                command,
                origin=job.origin,
                app_id=job.app_id,
                budget=job.budget,
            )
            job.agent_id, job.reconciled = holder.info.agent_id, True
            self._saw(job, holder, ours=True)
            return {"agent_id": holder.info.agent_id}
        data = _data(reply)
        created = _typed(reply, CallCreated)
        if created is None:  # the call was placed; its agent id was not readable
            return data
        job.agent_id = created.agent_id
        labels = _labels(command.properties.labels)
        self._emit(job, created.agent_id, STARTING, channel=channel, labels=labels, ours=True)
        return data

    async def _number_added(self, job: _Command, reply: Reply) -> Any:
        """number.add: after a lost response, the 409 is our own import; report the number."""
        command = job.command
        assert isinstance(command, NumberAdd)  # noqa: S101 - dispatched by type
        if isinstance(reply, ApiResponse) or reply.decision.action != Action.RECONCILE:
            return _data(reply)
        path = path_for(NumberGet, app_id=job.app_id, phone_number=command.phone_number)
        current = await self._caller.perform(
            request_for(NumberGet, path, {}, app_id=job.app_id),
            job.budget,
            idempotent=True,
            lookup=True,
        )
        return _data(current)

    # ---------------------------------------------------------------- events and results

    def _saw(self, job: _Command, found: FoundAgent, *, ours: bool = False) -> None:
        """Record what an agent.get read during the command (a lookup, a conflict)."""
        self._emit(job, found.info.agent_id, found.status, name=found.info.name, ours=ours)

    def _emit(
        self,
        job: _Command,
        agent_id: str,
        status: str,
        *,
        name: str | None = None,
        channel: str | None = None,
        labels: dict[str, str] | None = None,
        ours: bool = False,
    ) -> None:
        """Apply what the command observed; publish it when it changes the agent's status.

        `ours`: this worker started the agent (or reports it as the agent it started).
        """
        event = AgentStateEvent(
            agent_id=agent_id,
            app_id=job.app_id or None,
            name=name or job.name,
            status=status,
            source="command",
            command_id=job.command.id,
            channel=channel,
            observed_at=datetime.fromtimestamp(self._clock(), UTC),
            labels=labels,
        )
        observed = self._names.observe(event, ours=ours)
        if observed.changed:
            job.events.append(observed.state)

    def _result(
        self,
        job: _Command,
        received_at: datetime,
        outcome: Outcome,
        data: Any,
        error: ErrorInfo | None,
    ) -> ResultEvent:
        command = job.command
        completed_at = datetime.fromtimestamp(self._clock(), UTC)
        return ResultEvent(
            command_id=command.id,
            command=command.tag(),
            outcome=outcome,
            app_id=job.app_id or None,
            agent_id=job.agent_id,
            name=job.name,
            phone_number=getattr(command, "phone_number", None),
            correlation_id=command.correlation_id,
            data=data if outcome == "succeeded" else None,
            error=error,
            request_id=job.budget.progress.request_id,
            reconciled=job.reconciled,
            already_gone=job.already_gone,
            attempts=job.budget.progress.attempts,
            received_at=received_at,
            completed_at=completed_at,
            duration_ms=duration_ms(received_at, completed_at),
        )


def duration_ms(start: datetime, end: datetime) -> float:
    """Milliseconds from `start` to `end`, to the microsecond the datetimes carry (so a result
    says 9.64, not the binary float's 9.639999999999999), never negative."""
    return round(max(0.0, (end - start).total_seconds() * 1000), 3)


def _data(reply: Reply) -> Any:
    """A success's body; a target already gone has none."""
    if isinstance(reply, ApiResponse):
        return reply.data
    reply.expect(Action.GONE)
    return None


def _typed(reply: Reply, model: type[T]) -> T | None:
    """A 2xx body's fields the executor acts on; None when the body lacks them (empty, not
    JSON, or another shape): the operation ran all the same, so the command is not failed."""
    if not isinstance(reply, ApiResponse) or reply.unreadable:
        return None
    try:
        return view(reply.data, model)
    except msgspec.ValidationError:
        return None


def _labels(labels: Any) -> dict[str, str] | None:
    return labels if isinstance(labels, dict) else None
