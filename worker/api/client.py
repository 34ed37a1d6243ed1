"""The aiohttp client of the ConvoAI REST API: one session per process, one request per call.

`ConvoAIClient.send` performs exactly one HTTP request and either returns the decoded 2xx
response or raises an `ApiError` subclass that says whether the request may have reached the
API; retries and outcome decisions belong to the caller (`worker.execution`). The per-request
path is kept lean because the worker sends thousands of requests per second: the headers are
built once, the URL is assembled from pre-encoded parts, bodies arrive already encoded, the
request deadline is watched by one timer for all requests (`worker.api.expiry`) instead of
aiohttp's timer per request, and nothing is logged per request. The `Authorization` header is
never logged.

Each request goes to its tenant's base URL (`worker.api.regions`): a request that is safe to
resend (an idempotent operation) goes to the first region not set aside, and a connection
refused there is tried at once in the next region; a request that is not safe to resend always
goes to the tenant's first region. The credentials may be replaced while requests run
(`worker.api.rotation`): the headers are rebuilt from the next request on, and requests already
sent keep theirs.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from types import TracebackType
from typing import Any, NamedTuple, Self

import aiohttp
import msgspec
from yarl import URL

from contracts import COMMAND_TYPES
from worker import __version__
from worker.api.errors import (
    ApiConnectError,
    ApiStatusError,
    ApiTimeoutError,
    ConnectionLostError,
    TransportError,
)
from worker.api.expiry import RequestExpiry
from worker.api.regions import Regions
from worker.api.requests import ApiRequest
from worker.api.tenants import Tenants
from worker.settings import Settings

# The SDK ignores the response body of these operations (`docs/api-reference.md` §2.0); so
# do we when it is not JSON (the real API may answer leave with an empty 200). Any other 2xx
# that is not JSON still means the operation ran: its text is kept, marked `unreadable`.
BODY_IGNORED = frozenset({"agent.stop", "number.delete"})
REQUEST_ID_HEADERS = ("X-Request-ID", "Agora-Request-Id")
USER_AGENT = f"convoai-worker/{__version__}"
# operations whose request may go to another region after a failure (`docs/policy.md`)
RESENDABLE = frozenset(tag for tag, command in COMMAND_TYPES.items() if command.idempotent)

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
        # the total is watched by `self._expiry`; aiohttp only bounds opening a new connection
        self._timeout = aiohttp.ClientTimeout(sock_connect=settings.api_connect_timeout_seconds)
        self._expiry = RequestExpiry()
        self._tenants = tenants or Tenants.from_settings(settings)
        self._headers: dict[tuple[str, bool], dict[str, str]] = {}  # (App ID, JSON?) → headers
        self._generation = self._tenants.generation  # of the credentials the headers come from
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        await self._expiry.__aenter__()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._settings.api_max_connections),
            timeout=self._timeout,
            trust_env=False,
            # no cookies kept: one session serves every tenant, and a cookie one tenant's
            # response set must not go out with another's requests
            cookie_jar=aiohttp.DummyCookieJar(),
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
        await self._expiry.__aexit__(exc_type, exc, tb)

    async def send(self, request: ApiRequest, *, time_left: float | None = None) -> ApiResponse:
        """Send `request` once; `time_left` (seconds to the deadline) caps the request timeout.

        Raises an `ApiError` subclass for anything but a readable 2xx response.
        """
        if self._session is None:
            raise RuntimeError("ConvoAIClient is used outside its `async with` block")
        seconds = self._settings.api_timeout_seconds
        if time_left is not None and time_left < seconds:
            seconds = max(0.0, time_left)
        regions = self._tenants.regions(request.app_id)
        # A request that may have reached a region (a 5xx, a timeout) is followed by its retry
        # elsewhere only when it is safe to resend; the others start at the primary region.
        # A connection never opened proves the request was not sent: every operation then
        # goes on to the next region at once, within the same time.
        base = regions.current() if request.operation in RESENDABLE else regions.primary
        ends = time.monotonic() + seconds
        while True:
            try:
                return await self._send_to(base, request, ends - time.monotonic(), regions)
            except ApiConnectError:
                others = regions.others(base)
                if not others or time.monotonic() >= ends:
                    raise
                base = others[0]

    async def _send_to(
        self, base: str, request: ApiRequest, seconds: float, regions: Regions
    ) -> ApiResponse:
        """Send `request` to the API at `base`, within `seconds`; a transport failure or a 5xx
        sets `base` aside in `regions`."""
        session = self._session
        assert session is not None  # noqa: S101 - checked by `send`
        url = base + request.path
        if request.query:
            url = f"{url}?{request.query}"
        seconds = max(0.0, seconds)
        token, watch = self._expiry.watch(seconds)
        try:
            async with session.request(
                request.method,
                URL(url, encoded=True),
                data=request.body,
                headers=self._headers_of(request),  # the command's own headers added last
                allow_redirects=False,
                timeout=self._connect_timeout(seconds),
            ) as response:
                status = response.status
                raw = await response.read()
                headers = response.headers
        except asyncio.CancelledError:
            if not watch.expired:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # the deadline's cancellation, handled here
            regions.failed(base, "timeout")
            raise ApiTimeoutError(request.operation, "no response before the timeout") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = _transport_error(request.operation, exc)
            regions.failed(base, type(error).__name__)
            raise error from exc
        finally:
            self._expiry.unwatch(token)
        if status >= 500:
            regions.failed(base, f"HTTP {status}")
        else:
            regions.succeeded(base)
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
        is bounded by the App IDs configured, whatever App IDs commands name); built anew
        after the credentials changed."""
        if self._generation != self._tenants.generation:
            self._headers, self._generation = {}, self._tenants.generation
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
        if request.headers:
            return {**headers, **dict(request.headers)}
        return headers

    def _connect_timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        """aiohttp's timeouts for one request: a new connection within the connect timeout, or
        within the request's whole time when that is shorter."""
        if seconds >= self._settings.api_connect_timeout_seconds:
            return self._timeout  # never None: aiohttp reads None as its 5-minute default
        return aiohttp.ClientTimeout(sock_connect=seconds)


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


def _transport_error(operation: str, exc: aiohttp.ClientError | TimeoutError) -> TransportError:
    """What a failure without a response means: whether the request may have reached the API."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ApiConnectError(operation, f"connect timeout: {exc}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ApiConnectError(operation, f"cannot connect: {exc}")
    if isinstance(exc, TimeoutError):
        return ApiTimeoutError(operation, "no response before the timeout")
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return ConnectionLostError(operation, f"connection lost: {exc!r}")
    return TransportError(operation, repr(exc))


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
