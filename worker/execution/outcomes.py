"""How a command that did not succeed is described: outcome plus `ErrorInfo`.

Error codes are stable, machine-readable names: `retries_exhausted` (the pipeline also
dead-letters these), `expired`, `agent_not_found`, `conflict` (a start's name is held by an
agent it did not create; `details.holder` names it), `conflict_unresolved`,
`name_not_reusable` (the holder of a start's name has ended and the API still refuses the
name), `name_still_held` (agent.start waited for the agent holding its name to stop, in vain),
`name_unknown` (the API's agent.get gives no names, so a name cannot be looked up there),
`lookup_budget_exhausted`, `missing_app_id`, `invalid_response`, `internal_error` (from the
pipeline: a bug met the command),
`ambiguous_<reason>` for `unknown` outcomes, and for requests the API refused a name for the
HTTP status (`invalid_request`, `unauthorized`, `not_found`, ...; `http_<status>` for the rest).
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from contracts import ErrorInfo, Outcome
from worker.api.errors import ApiError, ApiStatusError
from worker.api.models import view
from worker.api.policy import Decision

T = TypeVar("T", bound=msgspec.Struct)

STATUS_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    422: "unprocessable",
}
EXHAUSTED = "retries_exhausted"


class CommandEndedError(Exception):
    """Ends a command early with a final outcome (a failed lookup, an unknown name, ...)."""

    def __init__(self, outcome: Outcome, error: ErrorInfo) -> None:
        super().__init__(f"{outcome}: {error.code}: {error.message}")
        self.outcome: Outcome = outcome
        self.error = error


def describe(
    error: ApiError, *, code: str, message: str | None = None, retryable: bool | None = None
) -> ErrorInfo:
    """`ErrorInfo` for a failed request: the API's status, reason, request id and error body."""
    answered = error if isinstance(error, ApiStatusError) else None
    return ErrorInfo(
        code=code,
        message=message or str(error),
        http_status=getattr(error, "status", None),
        reason=answered.reason if answered else None,
        request_id=getattr(error, "request_id", None),
        retryable=_retryable(code) if retryable is None else retryable,
        details=answered.body if answered else None,
    )


def failure(decision: Decision, error: ApiError) -> CommandEndedError:
    """The end of a command whose request the policy gave up on."""
    if decision.reason == EXHAUSTED:
        return CommandEndedError("failed", describe(error, code=EXHAUSTED))
    if decision.action == "unknown":
        message = (
            f"{error}; {error.operation} is not idempotent and may have reached the API, "
            "so it was not sent again"
        )
        return CommandEndedError(
            "unknown", describe(error, code=f"ambiguous_{decision.reason}", message=message)
        )
    return CommandEndedError("failed", describe(error, code=status_code(error)))


def status_code(error: ApiError) -> str:
    """The error code of a request the API refused."""
    if isinstance(error, ApiStatusError):
        return STATUS_CODES.get(error.status, f"http_{error.status}")
    return "transport_error"


def _retryable(code: str) -> bool | None:
    if code == EXHAUSTED:
        return True  # the same command may well succeed later
    if code.startswith("ambiguous_"):
        return None  # re-sending may repeat an action the API already performed
    return False  # the API refused the command itself


def read_as(data: Any, model: type[T], operation: str) -> T:
    """The fields of a 2xx body the worker acts on; ends the command when they are not there."""
    try:
        return view(data, model)
    except msgspec.ValidationError as exc:
        raise CommandEndedError(
            "failed",
            ErrorInfo(
                code="invalid_response",
                message=f"{operation} answered a body the worker cannot read: {exc}",
                retryable=True,
            ),
        ) from exc
