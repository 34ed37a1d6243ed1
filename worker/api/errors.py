"""Everything that can go wrong with one ConvoAI API request.

    ApiError                      operation, may_have_reached_api
     ├── TransportError           no HTTP response arrived
     │    ├── ApiConnectError     the connection was never established: the API saw nothing
     │    ├── ApiTimeoutError     no complete response within the timeout: the API may have acted
     │    └── ConnectionLostError the connection broke after the request was (partly) sent
     └── ApiStatusError           the API answered non-2xx: status, reason, detail, request id,
                                  Retry-After

A 2xx is never an error, whatever its body: the operation ran (`ApiResponse.unreadable`).

`may_have_reached_api` is what the outcome policy needs for non-idempotent operations: only an error
that proves the request never left this process (`ApiConnectError`) allows re-sending a speak,
think, interrupt or call.start. The API's error bodies come in two shapes (`docs/api-reference.md`
§4): `{"detail", "reason"}` on agent endpoints and `{"error_type", "description"}` on telephony and
phone-number endpoints; `ApiStatusError` reads both into `reason` and `detail`.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A ConvoAI API request that did not produce a usable 2xx response."""

    may_have_reached_api = True

    def __init__(self, operation: str, message: str) -> None:
        super().__init__(f"{operation}: {message}")
        self.operation = operation
        self.message = message


class TransportError(ApiError):
    """No HTTP response: DNS, TCP, TLS or timeout trouble."""


class ApiConnectError(TransportError):
    """The connection could not be established, so the request was never sent."""

    may_have_reached_api = False


class ApiTimeoutError(TransportError):
    """The response did not arrive in time; the API may have received and executed the request."""


class ConnectionLostError(TransportError):
    """The connection closed before a complete response; the request may have been executed."""


class ApiStatusError(ApiError):
    """A non-2xx response.

    `reason` is the API's machine-readable code (`reason` or `error_type`), `detail` its text
    (`detail`, `description` or `message`), `request_id` the response's request id header and
    `retry_after` the `Retry-After` delay in seconds when the API sent one.
    """

    def __init__(
        self,
        operation: str,
        status: int,
        *,
        body: Any = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        fields = body if isinstance(body, dict) else {}
        reason = fields.get("reason") or fields.get("error_type")
        detail = fields.get("detail") or fields.get("description") or fields.get("message")
        self.status = status
        self.reason: str | None = reason if isinstance(reason, str) else None
        self.detail: str | None = detail if isinstance(detail, str) else None
        self.body = body
        self.request_id = request_id
        self.retry_after = retry_after
        text = " ".join(part for part in (self.reason, self.detail) if part)
        super().__init__(operation, f"HTTP {status}" + (f" {text}" if text else ""))
