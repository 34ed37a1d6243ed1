"""One decoded command, executed end to end: the same code for the worker and for `exec`.

`Executor.execute` resolves an agent name to an id, builds the request the SDK would send,
performs it under the outcome policy and the command's deadline, reconciles a conflicting
start, and returns exactly one `ResultEvent` plus the agent-state changes the command caused.
Command-level problems (API refusals, exhausted retries, unknown names, expiry) become the
result's outcome; only cancellation propagates.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import structlog

from contracts import (
    AgentCommand,
    AgentGet,
    AgentList,
    AgentStart,
    AgentStateEvent,
    AgentStop,
    AgentUpdate,
    CallHangup,
    CallStart,
    Command,
    DecodedCommand,
    ErrorInfo,
    NumberAdd,
    NumberGet,
    Outcome,
    ResultEvent,
)
from worker.api.client import ApiResponse
from worker.api.models import AgentCreated, AgentInfo, AgentPage, CallCreated
from worker.api.observer import ApiObserver, NullObserver
from worker.api.policy import Action
from worker.api.requests import build_request, path_for, request_for
from worker.api.retry import Backoff
from worker.execution.caller import ApiSender, Caller, Progress, Refusal, Run
from worker.execution.lookup import AgentFinder
from worker.execution.names import NameDirectory
from worker.execution.outcomes import CommandEndedError, describe, failure, read_as
from worker.settings import Settings

log = structlog.get_logger(__name__)

STARTING = "STARTING"  # also the status of a call's agent: the call response has none
STOPPED = "STOPPED"


class Execution(NamedTuple):
    """What one command produced: its final result and the agent-state changes it caused."""

    result: ResultEvent
    state_events: list[AgentStateEvent]


@dataclass(slots=True)
class _Job:
    """One command while it runs."""

    command: Command
    rest: dict[str, Any]
    app_id: str
    run: Run
    agent_id: str | None = None
    name: str | None = None
    events: list[AgentStateEvent] = field(default_factory=list)


Reply = ApiResponse | Refusal
Handler = Callable[[_Job, Reply], Awaitable[Any]]


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
    ) -> None:
        self._settings = settings
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
        self._handlers: dict[type[Any], Handler] = {
            AgentStart: self._started,
            AgentStop: self._stopped,
            CallHangup: self._stopped,
            AgentGet: self._observed,
            AgentUpdate: self._observed,
            AgentList: self._listed,
            CallStart: self._called,
            NumberAdd: self._number_added,
        }

    async def execute(
        self, decoded: DecodedCommand, *, received_at: datetime, progress: Progress | None = None
    ) -> Execution:
        """Run the command to its one final outcome; never raises for a command-level problem.

        `progress` lets the caller see, if it has to interrupt the command, whether a request
        that must not be repeated may already have reached the API.
        """
        command = decoded.command
        job = self._job(decoded, progress)
        data: Any = None
        outcome: Outcome = "succeeded"
        error: ErrorInfo | None = None
        try:
            data = await self._run(job)
        except CommandEndedError as ended:
            outcome, error = ended.outcome, ended.error
        except Exception as exc:  # a bug must not take the partition down with it
            log.exception("command_execution_crashed", command_id=command.id)
            outcome = "failed"
            error = ErrorInfo(code="internal_error", message=f"{type(exc).__name__}: {exc}")
        return Execution(self._result(job, received_at, outcome, data, error), job.events)

    def interrupted(
        self, decoded: DecodedCommand, *, received_at: datetime, progress: Progress
    ) -> Execution:
        """The `unknown` result of a command stopped while its request may have reached the API.

        The pipeline interrupts commands still running when their partition must be released;
        a non-idempotent request then must not be sent again by the next owner.
        """
        job = self._job(decoded, progress)
        error = ErrorInfo(
            code="ambiguous_interrupted",
            message=(
                f"{decoded.command.tag()} was interrupted while its request may have reached "
                "the API (the worker released the partition); it is not sent again"
            ),
        )
        return Execution(self._result(job, received_at, "unknown", None, error), [])

    def _job(self, decoded: DecodedCommand, progress: Progress | None) -> _Job:
        command = decoded.command
        # Without `expires_at` only the retry budget is bounded, from when execution starts: a
        # backlog that waited out an outage must still run (an agent.stop above all).
        deadline = command.expires_at or datetime.fromtimestamp(self._clock(), UTC) + timedelta(
            seconds=self._settings.command_timeout_seconds
        )
        return _Job(
            command=command,
            rest=decoded.rest,
            app_id=command.app_id or self._settings.app_id,
            run=Run(deadline.timestamp(), progress),
            agent_id=getattr(command, "agent_id", None),
            name=getattr(command, "name", None),
        )

    async def _run(self, job: _Job) -> Any:
        command = job.command
        if not job.app_id and "{appid}" in command.path_template:
            raise CommandEndedError(
                "failed",
                ErrorInfo(
                    code="missing_app_id",
                    message="the command has no app_id and CONVOAI_APP_ID is not set",
                ),
            )
        if isinstance(command, AgentCommand) and command.name is not None and not job.agent_id:
            job.agent_id = await self._resolve(job, command.name)
        request = build_request(
            command,
            job.rest,
            app_id=job.app_id,
            agent_id=job.agent_id,
            phone_number=getattr(command, "phone_number", None),
        )
        reply = await self._caller.perform(request, job.run, idempotent=command.idempotent)
        handler = self._handlers.get(type(command), self._plain)
        return await handler(job, reply)

    async def _resolve(self, job: _Job, name: str) -> str:
        """The id of the agent called `name`: from the directory, else from the API."""
        agent_id = self._names.resolve(job.app_id, name)
        if agent_id is not None:
            return agent_id
        found = await self._finder.find(job.app_id, name, job.run)
        if found is None:
            raise CommandEndedError(
                "failed",
                ErrorInfo(
                    code="agent_not_found",
                    message=f"no live agent is called {name!r} in app {job.app_id}",
                ),
            )
        self._names.record(job.app_id, name, found.info.agent_id, found.info.status or "RUNNING")
        return found.info.agent_id

    # ---------------------------------------------------------------- per-command handlers

    async def _plain(self, job: _Job, reply: Reply) -> Any:
        """The response body; `already_done` succeeds without one."""
        del job
        return _data(reply)

    async def _started(self, job: _Job, reply: Reply) -> Any:
        """agent.start: record the new agent, or find the one that holds the name (409)."""
        command = job.command
        assert isinstance(command, AgentStart)  # noqa: S101 - dispatched by type
        properties = command.properties
        channel = properties.channel
        labels = _labels(properties.labels)
        if isinstance(reply, ApiResponse):
            created = read_as(reply.data, AgentCreated, "agent.start")
            job.agent_id = created.agent_id
            status = created.status or STARTING
            self._emit(job, created.agent_id, status, channel=channel, labels=labels)
            return reply.data
        if reply.decision.action != Action.RECONCILE:
            raise failure(reply.decision, reply.error)
        found = await self._finder.find(job.app_id, command.name, job.run, channel=channel)
        if found is None:
            raise CommandEndedError(
                "failed",
                describe(
                    reply.error,
                    code="conflict_unresolved",
                    message=f"{reply.error}; no live agent called {command.name!r} was found",
                ),
            )
        job.agent_id = found.info.agent_id
        status = found.info.status or "RUNNING"
        self._emit(job, found.info.agent_id, status, channel=channel, labels=labels)
        return found.data

    async def _stopped(self, job: _Job, reply: Reply) -> Any:
        """agent.stop / call.hangup: the agent is gone, whether now or before (404)."""
        data = _data(reply)
        if job.agent_id:
            self._emit(job, job.agent_id, STOPPED)
        return data

    async def _observed(self, job: _Job, reply: Reply) -> Any:
        """agent.get / agent.update: report a status the directory does not know yet."""
        data = _data(reply)
        info = read_as(data, AgentInfo, job.command.tag())
        if info.status:
            self._emit(job, info.agent_id, info.status, name=info.name)
        return data

    async def _listed(self, job: _Job, reply: Reply) -> Any:
        """agent.list: report the agents the directory knows whose status changed."""
        data = _data(reply)
        page = read_as(data, AgentPage, "agent.list")
        for item in page.data.items if page.data else ():
            known = self._names.status(job.app_id, item.agent_id) is not None
            if item.status and known:
                self._emit(job, item.agent_id, item.status, name=item.name)
        return data

    async def _called(self, job: _Job, reply: Reply) -> Any:
        """call.start: the call created an agent that now holds the call's name."""
        command = job.command
        assert isinstance(command, CallStart)  # noqa: S101 - dispatched by type
        data = _data(reply)
        created = read_as(data, CallCreated, "call.start")
        job.agent_id = created.agent_id
        channel = command.properties.channel
        labels = _labels(command.properties.labels)
        self._emit(job, created.agent_id, STARTING, channel=channel, labels=labels)
        return data

    async def _number_added(self, job: _Job, reply: Reply) -> Any:
        """number.add: after a lost response, the 409 is our own import; report the number."""
        command = job.command
        assert isinstance(command, NumberAdd)  # noqa: S101 - dispatched by type
        if isinstance(reply, ApiResponse) or reply.decision.action != Action.RECONCILE:
            return _data(reply)
        path = path_for(NumberGet, app_id=job.app_id, phone_number=command.phone_number)
        current = await self._caller.perform(
            request_for(NumberGet, path, {}), job.run, idempotent=True
        )
        return _data(current)

    # ---------------------------------------------------------------- events and results

    def _emit(
        self,
        job: _Job,
        agent_id: str,
        status: str,
        *,
        name: str | None = None,
        channel: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        """Record the agent's status; publish it when it differs from what was known."""
        name = name or job.name
        known = self._names.status(job.app_id, agent_id)
        self._names.record(job.app_id, name, agent_id, status)
        if known == status:
            return
        job.events.append(
            AgentStateEvent(
                agent_id=agent_id,
                app_id=job.app_id,
                name=name,
                status=status,
                source="command",
                command_id=job.command.id,
                channel=channel,
                observed_at=datetime.fromtimestamp(self._clock(), UTC),
                labels=labels,
            )
        )

    def _result(
        self,
        job: _Job,
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
            attempts=job.run.progress.attempts,
            received_at=received_at,
            completed_at=completed_at,
            duration_ms=max(0.0, (completed_at - received_at).total_seconds() * 1000),
        )


def _data(reply: Reply) -> Any:
    """A success's body; `already_done` succeeds with none; any other refusal ends the command."""
    if isinstance(reply, ApiResponse):
        return reply.data
    if reply.decision.action == Action.ALREADY_DONE:
        return None
    raise failure(reply.decision, reply.error)


def _labels(labels: Any) -> dict[str, str] | None:
    return labels if isinstance(labels, dict) else None
