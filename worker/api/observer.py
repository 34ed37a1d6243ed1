"""How the API layer reports what it does, without depending on the metrics module.

The pipeline passes an implementation backed by Prometheus; everything else gets `NullObserver`.

`status_class` is one of `2xx`, `4xx`, `429`, `5xx`, or `error` (no usable HTTP response); a retry
`reason` is one of `rate_limited`, `quota`, `server_error`, `timeout`, `connection`.
"""

from __future__ import annotations

from typing import Protocol


class ApiObserver(Protocol):
    """Receives one call per finished HTTP request, per scheduled retry and per 2xx whose
    body could not be read."""

    def request_finished(self, operation: str, status_class: str, seconds: float) -> None:
        """An HTTP request of `operation` ended after `seconds`."""

    def retry_scheduled(self, operation: str, reason: str, delay: float) -> None:
        """`operation` will be sent again in `delay` seconds because of `reason`."""

    def unreadable_response(self, operation: str) -> None:
        """`operation` was answered 2xx with a body that is not JSON (it ran all the same)."""


class NullObserver:
    """Observes nothing."""

    def request_finished(self, operation: str, status_class: str, seconds: float) -> None:
        """Ignore the request."""

    def retry_scheduled(self, operation: str, reason: str, delay: float) -> None:
        """Ignore the retry."""

    def unreadable_response(self, operation: str) -> None:
        """Ignore the body."""


def status_class(status: int) -> str:
    """The `status_class` label of an HTTP status."""
    if status == 429:
        return "429"
    if status >= 500:
        return "5xx"
    if status >= 400:
        return "4xx"
    if status >= 200 and status < 300:
        return "2xx"
    return "error"  # 1xx/3xx: the API never answers so; not a usable response
