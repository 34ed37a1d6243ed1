"""Error replies of the emulated API, in the two body shapes the real service uses.

Agent endpoints (`/v2/projects/{appid}/...` except telephony) answer `{"detail", "reason"}`;
telephony and phone-number endpoints answer `{"error_type", "description"}`
(`docs/api-reference.md` §4).
Handlers raise `EmulatedError`; the route wrapper renders it in the shape of the endpoint's family.

Only documented codes are sent. Agent `reason`s are the documented enum (paired with statuses
as `docs/api-reference.md` §4.1, §4.2 infers); telephony `error_type`s are the documented list: 400
`invalid_phone_format`, 401 `unauthorized`, 404 `not_found`, 409 `phone_number_exists` /
`conflict`, 422 `unprocessable_content` (every other validation error), 500
`internal_server_error`. Where the documentation names no code for a status (401 and 429 on
agent endpoints, 429 on telephony, gateway errors) the body carries the text alone.
"""

from __future__ import annotations

from typing import Literal

Family = Literal["agent", "telephony"]

# Reason (agent shape) and error_type (telephony shape) used when a reply names only a status;
# None where the documentation names none.
DEFAULT_REASONS: dict[int, tuple[str | None, str | None]] = {
    400: ("InvalidFieldValue", None),
    401: (None, "unauthorized"),
    403: ("InvalidPermission", None),
    404: ("TaskNotFound", "not_found"),
    409: ("TaskConflict", "conflict"),
    422: ("ConcurrencyLimitExceeded", "unprocessable_content"),
    500: ("InternalError", "internal_server_error"),
    503: ("ServiceUnavailable", None),
    504: ("TaskOperationTimeout", None),
}
PHONE_FORMAT = "invalid_phone_format"
UNPROCESSABLE = "unprocessable_content"


class EmulatedError(Exception):
    """An API error reply: HTTP status, machine-readable code and human-readable text."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def status_in(self, family: Family) -> int:
        """The HTTP status on an endpoint of `family`."""
        del family
        return self.status

    def body(self, family: Family) -> dict[str, str]:
        """The JSON body in the shape of `family`; a missing code falls back to the status's."""
        agent_reason, error_type = DEFAULT_REASONS.get(self.status, (None, None))
        if family == "agent":
            return _shaped("reason", self.code or agent_reason, "detail", self.message)
        return _shaped("error_type", self.code or error_type, "description", self.message)


class InvalidBodyError(EmulatedError):
    """A request body the API cannot use: 400 with a `reason` on agent endpoints, 422
    `unprocessable_content` on telephony and phone-number endpoints (400
    `invalid_phone_format` for a number that is not E.164)."""

    def __init__(self, reason: str, message: str, error_type: str = UNPROCESSABLE) -> None:
        super().__init__(400, reason, message)
        self.error_type = error_type

    def status_in(self, family: Family) -> int:
        """400 on agent endpoints and for a malformed number, 422 for other telephony input."""
        if family == "agent" or self.error_type == PHONE_FORMAT:
            return 400
        return 422

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


def _shaped(code_key: str, code: str | None, text_key: str, text: str) -> dict[str, str]:
    return {text_key: text, code_key: code} if code else {text_key: text}
