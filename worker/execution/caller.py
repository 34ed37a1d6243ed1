"""One request, sent until the outcome policy is satisfied or the budget runs out.

`Caller.perform` sends a request, asks the policy what each failure means and waits the backoff
before sending again, within `api_max_attempts` and the command's deadline (a wait that would
end past the deadline is not started; the last attempt's timeout is cut to the time left). It
returns the 2xx response, or the failure when the policy says the target is gone or must be
reconciled; every other ending raises `CommandEndedError` with the command's outcome. `pause`
is the same backoff for commands that poll until the API reaches a state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol

from contracts import ErrorInfo
from worker.api.client import ApiResponse
from worker.api.errors import ApiError, ApiStatusError
from worker.api.observer import ApiObserver, status_class
from worker.api.policy import NOT_EXECUTED, Action, Decision, decide
from worker.api.requests import ApiRequest
from worker.api.retry import Backoff
from worker.execution.outcomes import EXHAUSTED, CommandEndedError, failure

RETRY_ACTIONS = frozenset({Action.RETRY, Action.RETRY_LATER})


class ApiSender(Protocol):
    """What the caller needs from `ConvoAIClient`."""

    async def send(self, request: ApiRequest, *, time_left: float | None = None) -> ApiResponse:
        """Send once; raise an `ApiError` subclass unless the response is a readable 2xx."""


class Progress:
    """What one command's execution has done so far, readable while it runs.

    `attempts` counts the sends of the command's own request (retries and re-sent starts
    included); the reads that resolve a name or settle a conflict are not the command's attempts.
    `in_doubt` is True while a request that must not be repeated may have reached the API:
    if the command is interrupted then, its outcome is `unknown`, and it must not run again.
    `request_id` is the API's request id of the last response (2xx or not), when it sent one.
    """

    __slots__ = ("attempts", "in_doubt", "request_id")

    def __init__(self) -> None:
        self.attempts = 0
        self.in_doubt = False
        self.request_id: str | None = None


class Budget:
    """One command's budget: its deadline (Unix seconds) and its progress."""

    __slots__ = ("deadline", "progress")

    def __init__(self, deadline: float, progress: Progress | None = None) -> None:
        self.deadline = deadline
        self.progress = progress or Progress()


class Refusal(NamedTuple):
    """A failure the policy turns into `gone` or `reconcile`.

    `repeated`: an earlier attempt of the same request was sent and its outcome is in doubt (so
    a 404 may be the result of our own earlier attempt, and a 409's holder our own creation).
    """

    decision: Decision
    error: ApiError
    repeated: bool = False

    def expect(self, action: Action) -> Refusal:
        """This refusal, which the handler of its operation knows to mean `action`: no operation
        has both a `gone` and a `reconcile` row (tests/api/test_policy.py checks the table)."""
        assert self.decision.action == action, self.decision  # noqa: S101 - the table's shape
        return self


class Caller:
    """Sends requests with retries; shared by all commands of a worker."""

    def __init__(
        self,
        client: ApiSender,
        *,
        max_attempts: int,
        backoff: Backoff,
        observer: ApiObserver,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._observer = observer
        self._sleep = sleep
        self._clock = clock

    async def perform(
        self, request: ApiRequest, budget: Budget, *, idempotent: bool, lookup: bool = False
    ) -> ApiResponse | Refusal:
        """Send `request` until it succeeds or the policy or the budget ends the command.

        `lookup`: a read the command needs on the way (a name, a conflict's holder), which is
        not one of the command's attempts.
        """
        operation = request.operation
        repeated = False  # an earlier attempt of this request may have reached the API
        attempt = 0
        while True:
            attempt += 1
            time_left = budget.deadline - self._clock()
            if time_left <= 0:
                raise CommandEndedError(
                    "expired",
                    ErrorInfo(code="expired", message=f"deadline passed before {operation}"),
                )
            progress = budget.progress
            if not lookup:
                progress.attempts += 1
            if not idempotent:
                progress.in_doubt = True
            sent = await self._send_once(request, time_left)
            if not isinstance(sent, ApiError):
                progress.request_id = sent.request_id
                return sent
            error = sent
            progress.request_id = getattr(error, "request_id", None) or progress.request_id
            decision = decide(operation, error, idempotent=idempotent, repeated=repeated)
            if decision.action in (Action.GONE, Action.RECONCILE):
                return Refusal(decision, error, repeated)
            # in doubt: it may have been performed (a 429 or a refused connection was not)
            repeated = repeated or (
                error.may_have_reached_api and decision.condition not in NOT_EXECUTED
            )
            progress.in_doubt = not idempotent and repeated
            if decision.action not in RETRY_ACTIONS:
                raise failure(decision, error)
            delay = self._delay(attempt, decision, error)
            if attempt >= self._max_attempts or self._clock() + delay >= budget.deadline:
                raise failure(decision._replace(reason=EXHAUSTED), error)
            self._observer.retry_scheduled(operation, decision.reason, delay)
            await self._sleep(delay)

    async def pause(self, attempt: int, budget: Budget) -> bool:
        """Wait the backoff before poll `attempt + 1`; False if that would pass the deadline."""
        delay = self._backoff.delay(attempt, long=False, retry_after=None)
        if self._clock() + delay >= budget.deadline:
            return False
        await self._sleep(delay)
        return True

    async def _send_once(self, request: ApiRequest, time_left: float) -> ApiResponse | ApiError:
        """One HTTP request, reported to the observer; the error is returned, not raised."""
        started = time.perf_counter()
        try:
            response = await self._client.send(request, time_left=time_left)
        except ApiError as error:
            self._observer.request_finished(
                request.operation, _status_class(error), time.perf_counter() - started
            )
            return error
        self._observer.request_finished(
            request.operation, status_class(response.status), time.perf_counter() - started
        )
        if response.unreadable:
            self._observer.unreadable_response(request.operation)
        return response

    def _delay(self, attempt: int, decision: Decision, error: ApiError) -> float:
        retry_after = error.retry_after if isinstance(error, ApiStatusError) else None
        return self._backoff.delay(
            attempt, long=decision.action == Action.RETRY_LATER, retry_after=retry_after
        )


def _status_class(error: ApiError) -> str:
    if isinstance(error, ApiStatusError):
        return status_class(error.status)
    return "error"
