"""Error replies of the emulated API, in the two body shapes the real service uses.

Agent endpoints (`/v2/projects/{appid}/...` except telephony) answer `{"detail", "reason"}`;
telephony and phone-number endpoints answer `{"error_type", "description"}`
(`docs/api-reference.md` §4).
Handlers raise `EmulatedError`; the route wrapper renders it in the shape of the endpoint's family.
"""

from __future__ import annotations

from typing import Literal

Family = Literal["agent", "telephony"]

# Reason (agent shape) and error_type (telephony shape) used when a reply names only a status.
# Pairings not documented by Agora are the inferred mapping of `docs/api-reference.md` §4.1, §4.2.
DEFAULT_REASONS: dict[int, tuple[str, str]] = {
    400: ("InvalidFieldValue", "unprocessable_content"),
    401: ("Unauthorized", "unauthorized"),
    403: ("InvalidPermission", "forbidden"),
    404: ("TaskNotFound", "not_found"),
    409: ("TaskConflict", "conflict"),
    422: ("ConcurrencyLimitExceeded", "unprocessable_content"),
    429: ("TooManyRequests", "too_many_requests"),
    500: ("InternalError", "internal_server_error"),
    502: ("InternalError", "bad_gateway"),
    503: ("ServiceUnavailable", "service_unavailable"),
    504: ("TaskOperationTimeout", "gateway_timeout"),
}


class EmulatedError(Exception):
    """An API error reply: HTTP status, machine-readable code and human-readable text."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def body(self, family: Family) -> dict[str, str]:
        """The JSON body in the shape of `family`; a missing code falls back to the status's."""
        agent_reason, error_type = DEFAULT_REASONS.get(self.status, ("Error", "error"))
        if family == "agent":
            return {"detail": self.message, "reason": self.code or agent_reason}
        return {"error_type": self.code or error_type, "description": self.message}


class InvalidBodyError(EmulatedError):
    """400 for a request body the API cannot use, with a code for each family."""

    def __init__(self, reason: str, message: str, error_type: str = "invalid_request") -> None:
        super().__init__(400, reason, message)
        self.error_type = error_type

    def body(self, family: Family) -> dict[str, str]:
        """`reason` on agent endpoints, `error_type` on telephony and phone-number endpoints."""
        if family == "agent":
            return {"detail": self.message, "reason": self.reason}
        return {"error_type": self.error_type, "description": self.message}

    @property
    def reason(self) -> str:
        """The agent-family reason (`MissingRequiredField`, `InvalidFieldValue`, ...)."""
        return self.code or "InvalidRequestBody"


def not_found(family: Family, what: str) -> EmulatedError:
    """404 in the family's vocabulary (`TaskNotFound` / `not_found`)."""
    return EmulatedError(404, "TaskNotFound" if family == "agent" else "not_found", what)
