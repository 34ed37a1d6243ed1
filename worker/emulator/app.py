"""The emulator's aiohttp application: the API routes, authentication, faults and admin endpoints.

`build_app(config)` returns an application that tests mount in-process and that
`convoai-worker emulator` serves. Every API route goes through one wrapper (authentication,
content type, latency, fault injection, body decoding, request log, error rendering) instead of
middlewares,
which keeps the per-request cost low enough for the emulator never to be the bottleneck of a
benchmark. Admin endpoints live under `/_emulator/`:

    GET    /_emulator/requests[?operation=agent.start]   request log (bounded ring buffer)
    DELETE /_emulator/requests                           clear the log
    GET    /_emulator/faults                             faults in force, remaining hits
    PUT    /_emulator/faults                             replace them (`FaultSettings` JSON)
    DELETE /_emulator/faults                             back to a healthy service
    POST   /_emulator/reset                              forget agents, numbers, faults, log
    POST   /_emulator/apps/{appid}/agents/{agent_id}/leave   {"status": "FAILED", "message": ...}
    POST   /_emulator/apps/{appid}/agents/{agent_id}/error   {"errors": [{"module": ...}]}
    POST   /_emulator/apps/{appid}/calls/inbound        {"to_number": ..., "from_number": ...}
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import msgspec
from aiohttp import web

from worker.emulator.auth import Authenticator, basic
from worker.emulator.config import EmulatorConfig
from worker.emulator.errors import EmulatedError, InvalidBodyError
from worker.emulator.faults import FaultRule, Faults, FaultSettings
from worker.emulator.requestlog import LoggedRequest, RequestLog
from worker.emulator.routes import ROUTES, Arguments, Route
from worker.emulator.state import EmulatorState
from worker.emulator.webhooks import WebhookSender

BASE_PATHS = ("/api/conversational-ai-agent", "/cn/api/conversational-ai-agent")
BODY_METHODS = frozenset({"POST", "PATCH", "PUT"})
JSON = "application/json"

STATE = web.AppKey("state", EmulatorState)
FAULTS = web.AppKey("faults", Faults)
REQUESTS = web.AppKey("requests", RequestLog)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(
    config: EmulatorConfig | None = None, *, clock: Callable[[], float] = time.time
) -> web.Application:
    """An application serving the API under both base paths, plus the admin endpoints."""
    config = config or EmulatorConfig()
    sender = (
        WebhookSender(config.webhook_url, config.webhook_secret) if config.webhook_url else None
    )
    state = EmulatorState(
        rules=config.rules,
        start_delay=config.start_delay,
        stop_delay=config.stop_delay,
        max_agents_per_app=config.max_agents_per_app,
        retain_stopped=config.retain_stopped,
        notifier=sender,
        clock=clock,
    )
    app = web.Application()
    app[STATE] = state
    app[FAULTS] = Faults(config.faults)
    app[REQUESTS] = RequestLog(config.request_log_size)
    endpoint = _EndpointFactory(app, _authenticator(config), clock)
    for base in BASE_PATHS:
        for route in ROUTES:
            app.router.add_route(route.method, base + route.path, endpoint(route))
    _add_admin_routes(app)
    if sender is not None:
        app.cleanup_ctx.append(_running(sender))
    return app


def _running(sender: WebhookSender) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(_: web.Application) -> AsyncIterator[None]:
        await sender.start()
        yield
        await sender.close()

    return context


def _authenticator(config: EmulatorConfig) -> Authenticator:
    accepted = set()
    if config.customer_id:
        accepted.add(basic(config.customer_id, config.customer_secret))
    if config.auth_token:
        accepted.add(f"agora token={config.auth_token}")
    owners = {
        app_id: basic(*pair.split(":", 1)) if ":" in pair else basic(pair, "")
        for app_id, pair in config.tenants.items()
    }
    return Authenticator(
        config.rules,
        accepted=frozenset(accepted),
        owners=owners,
        certificates=config.app_certificates,
    )


class _EndpointFactory:
    """Builds the handler of each API route around the shared state, faults and log."""

    def __init__(
        self, app: web.Application, auth: Authenticator, clock: Callable[[], float]
    ) -> None:
        self._state = app[STATE]
        self._faults = app[FAULTS]
        self._log = app[REQUESTS]
        self._auth = auth
        self._clock = clock
        self._request_ids = itertools.count(1)

    def __call__(self, route: Route) -> Handler:
        state, faults, log, auth, clock = (
            self._state, self._faults, self._log, self._auth, self._clock
        )  # fmt: skip
        request_ids = self._request_ids
        reads_body = route.method in BODY_METHODS
        check_type = state.rules.check_content_type

        async def handle(request: web.Request) -> web.StreamResponse:
            raw = await request.read() if reads_body and request.body_exists else b""
            received = time.time()  # what the log's order of arrival rests on

            def record(status: int) -> None:
                log.record(
                    LoggedRequest(
                        received, route.operation, request.method, request.path,
                        request.query_string, raw, status,
                    )
                )  # fmt: skip

            refused = _refusal(request, raw, auth, clock(), check_type=check_type)
            if refused is not None:
                record(refused.status_in(route.family))
                return _error(refused, route, request_ids)
            fault = faults.pick(route.operation) if faults.settings.rules else None
            latency = faults.latency()
            if latency:
                await asyncio.sleep(latency)
            if fault is not None and not fault.execute and fault.action in ("error", "drop"):
                return _unperformed(fault, route, request_ids, record, request)
            outcome: Any  # the response payload, or the error to answer with
            try:
                outcome = route.perform(
                    state, Arguments(request.match_info, request.query, _decode(raw))
                )
            except EmulatedError as error:
                outcome = error
            if fault is not None and fault.action != "delay":
                return _unperformed(fault, route, request_ids, record, request)
            if fault is not None:
                await asyncio.sleep(fault.delay_ms / 1000)
            if isinstance(outcome, EmulatedError):
                record(outcome.status_in(route.family))
                return _error(outcome, route, request_ids)
            record(route.status)
            headers = {"X-Request-ID": f"emu-{next(request_ids)}"}
            if route.status == 204:
                return web.Response(status=204, headers=headers)
            body = msgspec.json.encode(outcome)
            return web.Response(body=body, status=route.status, content_type=JSON, headers=headers)

        return handle


def _refusal(
    request: web.Request, raw: bytes, auth: Authenticator, now: float, *, check_type: bool
) -> EmulatedError | None:
    """Why the service refuses the request before reading it: 401 for credentials that may
    not reach the path's App ID, 400 for a body that does not say it is JSON."""
    app_id = request.match_info.get("appid", "")
    if not auth.allows(request.headers.get("Authorization"), app_id, now):
        return EmulatedError(401, None, "authentication failed")
    if check_type and raw and request.content_type != JSON:
        return InvalidBodyError("InvalidRequestBody", f"a request body needs content-type: {JSON}")
    return None


def _unperformed(
    fault: FaultRule,
    route: Route,
    request_ids: itertools.count[int],
    record: Callable[[int], None],
    request: web.Request,
) -> web.Response:
    """The answer a fault puts in place of the operation's own (which may have run or not):
    an error, a dropped connection, or a 2xx whose body is `fault.body`."""
    if fault.action == "drop":
        record(0)
        _drop(request)
    if fault.action == "garble":
        record(route.status)
        return web.Response(
            text=fault.body,
            status=route.status,
            content_type="text/plain",
            headers={"X-Request-ID": f"emu-{next(request_ids)}"},
        )
    record(fault.status)
    return _injected_error(fault, route, request_ids)


def _decode(raw: bytes) -> Any:
    """The JSON body, `None` when there is none; 400 `InvalidRequestBody` when it is not JSON."""
    if not raw:
        return None
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise InvalidBodyError("InvalidRequestBody", "request body is not valid JSON") from None


def _drop(request: web.Request) -> NoReturn:
    """Close the connection without an answer; the client sees the server disconnect."""
    transport = request.transport
    if transport is not None:
        transport.close()
    raise asyncio.CancelledError


def _error(error: EmulatedError, route: Route, request_ids: itertools.count[int]) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(error.body(route.family)),
        status=error.status_in(route.family),
        content_type=JSON,
        headers={"X-Request-ID": f"emu-{next(request_ids)}"},
    )


def _injected_error(
    fault: FaultRule, route: Route, request_ids: itertools.count[int]
) -> web.Response:
    response = _error(
        EmulatedError(fault.status, fault.reason, "injected fault"), route, request_ids
    )
    if fault.retry_after is not None:
        response.headers["Retry-After"] = f"{fault.retry_after:g}"
    return response


# ---------------------------------------------------------------------- admin endpoints


def _add_admin_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/_emulator/requests", _get_requests)
    router.add_delete("/_emulator/requests", _clear_requests)
    router.add_get("/_emulator/faults", _get_faults)
    router.add_put("/_emulator/faults", _put_faults)
    router.add_delete("/_emulator/faults", _clear_faults)
    router.add_post("/_emulator/reset", _reset)
    router.add_post("/_emulator/apps/{appid}/agents/{agent_id}/leave", _end_agent)
    router.add_post("/_emulator/apps/{appid}/agents/{agent_id}/error", _agent_error)
    router.add_post("/_emulator/apps/{appid}/calls/inbound", _inbound_call)


def _json(payload: object, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(payload), status=status, content_type=JSON)


async def _get_requests(request: web.Request) -> web.Response:
    log = request.app[REQUESTS]
    entries = log.entries(request.query.get("operation"))
    return _json({"total": log.total, "requests": [entry.to_json() for entry in entries]})


async def _clear_requests(request: web.Request) -> web.Response:
    request.app[REQUESTS].clear()
    return _json({})


async def _get_faults(request: web.Request) -> web.Response:
    return _json(request.app[FAULTS].snapshot())


async def _put_faults(request: web.Request) -> web.Response:
    try:
        settings = msgspec.json.decode(await request.read(), type=FaultSettings)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        return _json({"error": str(exc)}, 400)
    request.app[FAULTS].replace(settings)
    return _json(request.app[FAULTS].snapshot())


async def _clear_faults(request: web.Request) -> web.Response:
    request.app[FAULTS].replace(FaultSettings())
    return _json({})


async def _reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    request.app[FAULTS].replace(FaultSettings())
    request.app[REQUESTS].clear()
    return _json({})


async def _end_agent(request: web.Request) -> web.Response:
    body = await _admin_body(request)
    app_id, agent_id = request.match_info["appid"], request.match_info["agent_id"]
    status = str(body.get("status", "STOPPED"))
    message = str(body.get("message", "Idle for too long"))
    return _admin_call(request, lambda state: state.end_agent(app_id, agent_id, status, message))


async def _agent_error(request: web.Request) -> web.Response:
    body = await _admin_body(request)
    app_id, agent_id = request.match_info["appid"], request.match_info["agent_id"]
    errors = body.get("errors") or [{"module": "llm", "turn_id": "", "code": 500, "message": ""}]
    return _admin_call(request, lambda state: state.report_error(app_id, agent_id, errors))


async def _inbound_call(request: web.Request) -> web.Response:
    body = await _admin_body(request)
    app_id = request.match_info["appid"]
    try:
        created = request.app[STATE].inbound_call(app_id, body)
    except EmulatedError as error:
        return _json(error.body("telephony"), error.status_in("telephony"))
    return _json(created)


async def _admin_body(request: web.Request) -> dict[str, Any]:
    try:
        body = msgspec.json.decode(await request.read() or b"{}")
    except msgspec.DecodeError:
        body = None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error":"body must be a JSON object"}', content_type=JSON)
    return body


def _admin_call(request: web.Request, action: Callable[[EmulatorState], None]) -> web.Response:
    try:
        action(request.app[STATE])
    except EmulatedError as error:
        return _json(error.body("agent"), error.status)
    return _json({})
