"""Request headers a command may add (`api_headers`), from a list the operator allows.

The SDK's `request_options` let a caller add headers to one request (a preview feature's, say).
A command may do the same, but only with names listed in `CONVOAI_API_EXTRA_HEADERS`: a command
naming any other is `rejected` before anything is sent, and the refusal names the headers, never
their values. Headers the worker sets itself (authentication, framing) can never be listed.
Values are sent as given and never logged: they may be credentials (`worker.redaction` masks a
secret-named header wherever a command's fields reach a log line).
"""

from __future__ import annotations

from collections.abc import Mapping

from worker.settings import Settings, SettingsError

VARIABLE = "CONVOAI_API_EXTRA_HEADERS"
RESERVED = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "host",
        "content-type",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "cookie",
        "user-agent",
    }
)


class ExtraHeaders:
    """The header names commands may add, compared without case."""

    def __init__(self, allowed: frozenset[str]) -> None:
        self._allowed = frozenset(name.lower() for name in allowed)

    @classmethod
    def from_settings(cls, settings: Settings) -> ExtraHeaders:
        """The allowed names; a name the worker sets itself is refused at startup."""
        names = frozenset(n.strip() for n in settings.api_extra_headers.split(",") if n.strip())
        reserved = sorted(name for name in names if name.lower() in RESERVED)
        if reserved:
            raise SettingsError(
                f"{VARIABLE}: {', '.join(reserved)} cannot be allowed: the worker sets it"
            )
        return cls(names)

    def refusal(self, headers: Mapping[str, str] | None) -> str | None:
        """Why a command carrying `headers` must not be sent; None when every name is allowed."""
        if not headers:
            return None
        refused = sorted(name for name in headers if name.lower() not in self._allowed)
        if not refused:
            return None
        allowed = ", ".join(sorted(self._allowed)) or "none"
        return f"api_headers {', '.join(refused)} not allowed ({VARIABLE}: {allowed})"
