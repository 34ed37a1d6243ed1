"""The HTTP client: responses, and how every failure maps onto the error hierarchy."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time
from collections.abc import AsyncIterator

import msgspec
import pytest
from aiohttp import web

from tests.emulator.harness import APP_ID, RunningEmulator, answering, serving, start_body
from worker.api.client import ConvoAIClient, parse_retry_after
from worker.api.errors import (
    ApiConnectError,
    ApiStatusError,
    ApiTimeoutError,
    ConnectionLostError,
)
from worker.api.requests import ApiRequest
from worker.api.tenants import authorization
from worker.emulator.faults import FaultRule, FaultSettings
from worker.settings import Settings

PHONE_NUMBERS = ApiRequest("number.list", "GET", "/v2/phone-numbers", "", None, False, APP_ID)


def join(name: str = "agent-1") -> ApiRequest:
    body = start_body(name)
    return ApiRequest(
        "agent.start",
        "POST",
        f"/v2/projects/{APP_ID}/join",
        "",
        msgspec.json.encode(body),
        True,
        APP_ID,
    )


def inject(emulator: RunningEmulator, *rules: FaultRule) -> None:
    emulator.faults.replace(FaultSettings(rules=list(rules)))


async def test_success_returns_status_body_and_request_id(emulator: RunningEmulator) -> None:
    """A 2xx comes back decoded, with the response's request id."""
    async with ConvoAIClient(emulator.settings()) as client:
        response = await client.send(join())
    assert response.status == 200
    assert response.data["status"] == "STARTING"
    assert response.request_id is not None
    assert response.request_id.startswith("emu-")


async def test_204_has_no_body(emulator: RunningEmulator) -> None:
    """Delete answers 204 without a body: data is None."""
    emulator.state.numbers.add(
        {
            "provider": "byo",
            "phone_number": "+15550001111",
            "label": "x",
            "inbound_config": {},
            "outbound_config": {},
        }
    )
    delete = ApiRequest(
        "number.delete", "DELETE", "/v2/phone-numbers/+15550001111", "", None, False, APP_ID
    )
    async with ConvoAIClient(emulator.settings()) as client:
        response = await client.send(delete)
    assert (response.status, response.data) == (204, None)
    assert response.request_id is not None
    assert response.request_id.startswith("emu-")


async def test_agent_error_bodies_become_reason_and_detail(emulator: RunningEmulator) -> None:
    """`{"detail","reason"}` and the Retry-After header land on ApiStatusError."""
    inject(emulator, FaultRule(status=503, reason="ServiceUnavailable", retry_after=2))
    async with ConvoAIClient(emulator.settings()) as client:
        with pytest.raises(ApiStatusError) as raised:
            await client.send(join())
    error = raised.value
    assert (error.status, error.reason, error.detail, error.retry_after) == (
        503,
        "ServiceUnavailable",
        "injected fault",
        2.0,
    )
    assert error.request_id is not None
    assert error.may_have_reached_api
    assert str(error) == "agent.start: HTTP 503 ServiceUnavailable injected fault"


async def test_telephony_error_bodies_become_reason_and_detail(emulator: RunningEmulator) -> None:
    """`{"error_type","description"}` fills the same fields."""
    get = ApiRequest("number.get", "GET", "/v2/phone-numbers/+15550000000", "", None, False, APP_ID)
    async with ConvoAIClient(emulator.settings()) as client:
        with pytest.raises(ApiStatusError) as raised:
            await client.send(get)
    assert (raised.value.status, raised.value.reason, raised.value.detail) == (
        404,
        "not_found",
        "phone number +15550000000 not found",
    )


async def test_wrong_credentials_are_a_401(emulator: RunningEmulator) -> None:
    """The emulator refuses a client whose Basic credentials differ."""
    async with ConvoAIClient(emulator.settings(customer_secret="nope")) as client:
        with pytest.raises(ApiStatusError) as raised:
            await client.send(PHONE_NUMBERS)
    assert raised.value.status == 401


async def test_refused_connections_never_reached_the_api() -> None:
    """Nothing listening: ApiConnectError with `may_have_reached_api` False."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings(api_base_url=f"http://127.0.0.1:{port}/api/conversational-ai-agent")
    async with ConvoAIClient(settings) as client:
        with pytest.raises(ApiConnectError) as raised:
            await client.send(PHONE_NUMBERS)
    assert raised.value.may_have_reached_api is False
    assert str(raised.value).startswith("number.list: cannot connect: ")


async def test_a_dropped_connection_may_have_reached_the_api(emulator: RunningEmulator) -> None:
    """The server closing without an answer is ConnectionLostError (ambiguous)."""
    inject(emulator, FaultRule(action="drop", execute=True))
    async with ConvoAIClient(emulator.settings()) as client:
        with pytest.raises(ConnectionLostError) as raised:
            await client.send(join())
    assert raised.value.may_have_reached_api
    assert str(raised.value).startswith("agent.start: connection lost: ")
    assert emulator.state.agent_count() == 1


async def test_a_slow_answer_is_a_timeout(emulator: RunningEmulator) -> None:
    """A response slower than `api_timeout_seconds` is ApiTimeoutError (ambiguous)."""
    inject(emulator, FaultRule(action="delay", delay_ms=400))
    async with ConvoAIClient(emulator.settings(api_timeout_seconds=0.1)) as client:
        with pytest.raises(ApiTimeoutError) as raised:
            await client.send(PHONE_NUMBERS)
    assert raised.value.may_have_reached_api
    assert str(raised.value) == "number.list: no response before the timeout"
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0  # the deadline's cancellation was taken back


async def test_time_left_shortens_the_timeout(emulator: RunningEmulator) -> None:
    """Near a deadline the request gives up after `time_left`, not the configured timeout."""
    inject(emulator, FaultRule(action="delay", delay_ms=400))
    async with ConvoAIClient(emulator.settings(api_timeout_seconds=5)) as client:
        with pytest.raises(ApiTimeoutError):
            await client.send(PHONE_NUMBERS, time_left=0.1)


async def test_a_cancellation_from_outside_stays_a_cancellation(emulator: RunningEmulator) -> None:
    """A request cancelled before its deadline (its partition is released) is cancelled, not
    turned into a timeout: only the deadline's own cancellation becomes ApiTimeoutError, and a
    cancelled request leaves nothing behind for the deadline to cancel later."""
    inject(emulator, FaultRule(action="delay", delay_ms=400))
    async with ConvoAIClient(emulator.settings(api_timeout_seconds=0.3)) as client:
        sending = asyncio.create_task(client.send(PHONE_NUMBERS))
        await asyncio.sleep(0.1)
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        await asyncio.sleep(0.4)  # past the deadline: the next request is not cancelled by it
        emulator.faults.replace(FaultSettings())
        assert (await client.send(PHONE_NUMBERS)).status == 200


async def test_a_finished_request_leaves_no_deadline_behind(emulator: RunningEmulator) -> None:
    """The task that sent a request goes on past that request's timeout without being cancelled:
    answered, refused with a status or lost, the request's deadline ends with it."""
    async with ConvoAIClient(emulator.settings(api_timeout_seconds=0.2)) as client:
        assert (await client.send(PHONE_NUMBERS)).status == 200
        inject(emulator, FaultRule(status=503, reason="ServiceUnavailable"))
        with pytest.raises(ApiStatusError):
            await client.send(PHONE_NUMBERS)
        inject(emulator, FaultRule(action="drop"))
        with pytest.raises(ConnectionLostError):
            await client.send(PHONE_NUMBERS)
        await asyncio.sleep(0.5)  # past every deadline above, and a sweep after it


@pytest.fixture
async def text_server() -> AsyncIterator[str]:
    """A server that answers every request 200 with a body that is neither JSON nor UTF-8,
    and its request id in the header the real API uses."""

    async def handle(_: web.Request) -> web.Response:
        return web.Response(body=b"<html>ok\xff</html>", headers={"Agora-Request-Id": "agora-1"})

    async with serving(answering(handle)) as origin:
        yield origin


async def test_a_2xx_that_is_not_json(text_server: str) -> None:
    """A 2xx is a response whatever its body: the text is kept (with a replacement character
    for what is not UTF-8) and marked unreadable; leave's body is ignored, as the SDK does.
    Both keep the request id."""
    async with ConvoAIClient(Settings(api_base_url=text_server)) as client:
        response = await client.send(join())
        leave = ApiRequest("agent.stop", "POST", "/v2/projects/a/agents/b/leave", "", None, False)
        left = await client.send(leave)
    assert (response.status, response.data, response.unreadable) == (
        200,
        "<html>ok\ufffd</html>",
        True,
    )
    assert (left.status, left.data, left.unreadable) == (200, None, False)
    assert (response.request_id, left.request_id) == ("agora-1", "agora-1")


@pytest.fixture
async def odd_server() -> AsyncIterator[str]:
    """Answers `/status/<n>` with status n (a redirect for 3xx) and a body that is not UTF-8
    JSON, `/moved` with 200, and `/message` with 400 and an API-style `message` field."""

    async def handle(request: web.Request) -> web.Response:
        if request.path == "/moved":
            return web.json_response({"agent_id": "elsewhere"})
        if request.path == "/message":
            return web.json_response({"message": "bad field", "reason": 7}, status=400)
        status = int(request.path.rsplit("/", 1)[-1])
        return web.Response(status=status, headers={"Location": "/moved"}, body=b"\xffoops")

    async with serving(answering(handle)) as origin:
        yield origin


@pytest.mark.parametrize("status", [300, 302, 500])
async def test_redirects_are_not_followed_and_odd_bodies_are_kept_as_text(
    odd_server: str, status: int
) -> None:
    """A 3xx is an error, never followed to another URL; a body that is neither JSON nor UTF-8
    is kept as text with replacement characters."""
    request = ApiRequest("agent.get", "GET", f"/status/{status}", "", None, False)
    async with ConvoAIClient(Settings(api_base_url=odd_server)) as client:
        with pytest.raises(ApiStatusError) as raised:
            await client.send(request)
    assert (raised.value.status, raised.value.body) == (status, "\ufffdoops")
    assert str(raised.value) == f"agent.get: HTTP {status}"


async def test_an_error_message_field_is_the_detail_and_a_non_text_reason_is_dropped(
    odd_server: str,
) -> None:
    request = ApiRequest("agent.get", "GET", "/message", "", None, False)
    async with ConvoAIClient(Settings(api_base_url=odd_server)) as client:
        with pytest.raises(ApiStatusError) as raised:
            await client.send(request)
    assert (raised.value.reason, raised.value.detail) == (None, "bad field")
    assert str(raised.value) == "agent.get: HTTP 400 bad field"


async def test_send_outside_the_context_is_an_error() -> None:
    """The session exists only inside `async with`."""
    with pytest.raises(RuntimeError, match="outside its `async with`"):
        await ConvoAIClient(Settings()).send(PHONE_NUMBERS)


def test_authorization_follows_the_sdk() -> None:
    """Token wins over Basic; no credentials means no header."""
    assert authorization(Settings(customer_id="id", customer_secret="s")) == "Basic aWQ6cw=="
    token = Settings(customer_id="id", customer_secret="s", auth_token="007x")
    assert authorization(token) == "agora token=007x"
    assert authorization(Settings()) is None


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    """Seconds, an HTTP date in the future, and garbage."""
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("inf") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    delay = parse_retry_after(later)
    assert delay is not None
    assert 28 <= delay <= 30
    assert parse_retry_after(email.utils.formatdate(time.time() - 30, usegmt=True)) == 0.0
