"""The aiohttp client of the ConvoAI REST API: one session per process, one request per call.

`ConvoAIClient.send` performs exactly one HTTP request and either returns the decoded 2xx
response or raises an `ApiError` subclass that says whether the request may have reached the
API; retries and outcome decisions belong to the caller (`worker.execution`). The per-request
path is kept lean because the worker sends thousands of requests per second: the headers are
built once, the URL is assembled from pre-encoded parts, bodies arrive already encoded, and
nothing is logged per request. The `Authorization` header is never logged.
"""

from __future__ import annotations

import email.utils
import math
import time
from types import TracebackType
from typing import Any, NamedTuple, Self

import aiohttp
import msgspec
from yarl import URL

from worker import __version__
from worker.api.errors import (
    ApiConnectError,
    ApiStatusError,
    ApiTimeoutError,
    ConnectionLostError,
    TransportError,
)
from worker.api.requests import ApiRequest
from worker.api.tenants import Tenants
from worker.settings import Settings

# The SDK ignores the response body of these operations (`docs/api-reference.md` §2.0); so
# do we when it is not JSON (the real API may answer leave with an empty 200). Any other 2xx
# that is not JSON still means the operation ran: its text is kept, marked `unreadable`.
BODY_IGNORED = frozenset({"agent.stop", "number.delete"})
REQUEST_ID_HEADERS = ("X-Request-ID", "Agora-Request-Id")
USER_AGENT = f"convoai-worker/{__version__}"

_decode_json = msgspec.json.Decoder().decode


class ApiResponse(NamedTuple):
    """A 2xx response: status, body as JSON values (unknown fields kept), request id;
    `unreadable`: the body was not JSON and `data` is its text."""

    status: int
    data: Any  # None when the body is empty or ignored
    request_id: str | None
    unreadable: bool = False


class ConvoAIClient:
    """Async context manager owning the process's single `aiohttp.ClientSession`."""

    def __init__(self, settings: Settings, tenants: Tenants | None = None) -> None:
        """`tenants` says whose credentials sign each request (from `settings` by default)."""
        self._settings = settings
        self._base = settings.api_base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(
            total=settings.api_timeout_seconds, connect=settings.api_connect_timeout_seconds
        )
        self._tenants = tenants or Tenants.from_settings(settings)
        self._headers: dict[tuple[str, bool], dict[str, str]] = {}  # (App ID, JSON?) → headers
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._settings.api_max_connections),
            timeout=self._timeout,
            trust_env=False,
            # aiohttp labels a body-less POST `application/octet-stream`; the SDK sends no
            # content-type there (leave), so only the explicit JSON header is ever sent
            skip_auto_headers=("Content-Type",),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, request: ApiRequest, *, time_left: float | None = None) -> ApiResponse:
        """Send `request` once; `time_left` (seconds to the deadline) caps the request timeout.

        Raises an `ApiError` subclass for anything but a readable 2xx response.
        """
        session = self._session
        if session is None:
            raise RuntimeError("ConvoAIClient is used outside its `async with` block")
        url = self._base + request.path
        if request.query:
            url = f"{url}?{request.query}"
        try:
            async with session.request(
                request.method,
                URL(url, encoded=True),
                data=request.body,
                headers=self._headers_of(request),
                allow_redirects=False,
                timeout=self._capped(time_left),
            ) as response:
                status = response.status
                raw = await response.read()
                headers = response.headers
        except aiohttp.ConnectionTimeoutError as exc:
            raise ApiConnectError(request.operation, f"connect timeout: {exc}") from exc
        except aiohttp.ClientConnectorError as exc:
            raise ApiConnectError(request.operation, f"cannot connect: {exc}") from exc
        except TimeoutError as exc:
            raise ApiTimeoutError(request.operation, "no response before the timeout") from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            raise ConnectionLostError(request.operation, f"connection lost: {exc!r}") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(request.operation, repr(exc)) from exc
        request_id = _request_id(headers)
        if 200 <= status < 300:
            return _success(request, status, raw, request_id)
        raise ApiStatusError(
            request.operation,
            status,
            body=_error_body(raw),
            request_id=request_id,
            retry_after=parse_retry_after(headers.get("Retry-After")),
        )

    def _headers_of(self, request: ApiRequest) -> dict[str, str]:
        """The request's headers, built once per App ID served and content type (so the cache
        is bounded by the App IDs configured, whatever App IDs commands name)."""
        cache_key = (request.app_id, request.json_content)
        headers = self._headers.get(cache_key)
        if headers is None:
            headers = {"User-Agent": USER_AGENT}
            auth = self._tenants.authorization(request.app_id)
            if auth is not None:
                headers["Authorization"] = auth
            if request.json_content:
                headers["Content-Type"] = "application/json"
            if self._tenants.serves(request.app_id):
                self._headers[cache_key] = headers
        return headers

    def _capped(self, time_left: float | None) -> aiohttp.ClientTimeout:
        if time_left is None or time_left >= self._settings.api_timeout_seconds:
            return self._timeout  # never None: aiohttp reads None as "no timeout at all"
        return aiohttp.ClientTimeout(
            total=time_left, connect=min(time_left, self._settings.api_connect_timeout_seconds)
        )


def _success(request: ApiRequest, status: int, raw: bytes, request_id: str | None) -> ApiResponse:
    """A 2xx: its JSON, nothing for an empty or ignored body, else its text marked unreadable."""
    if not raw:
        return ApiResponse(status, None, request_id)
    try:
        return ApiResponse(status, _decode_json(raw), request_id)
    except msgspec.DecodeError:
        if request.operation in BODY_IGNORED:
            return ApiResponse(status, None, request_id)
        return ApiResponse(status, raw.decode(errors="replace"), request_id, unreadable=True)


def _request_id(headers: Any) -> str | None:
    for name in REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return str(value)
    return None


def _error_body(raw: bytes) -> Any:
    """An error body as JSON when it is JSON, else as text (a gateway's HTML page, say)."""
    if not raw:
        return None
    try:
        return _decode_json(raw)
    except msgspec.DecodeError:
        return raw.decode(errors="replace")


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds: a number of seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
