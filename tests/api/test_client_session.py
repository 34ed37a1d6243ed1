"""The client's one session: how long opening a connection may take, how many are open at once,
no proxy taken from the environment, and the headers every request carries."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp import web

from tests.api.test_regions import GET, LIST, SPEAK, closed_port_url
from tests.emulator.harness import answering, answering_ok, serving
from worker import __version__
from worker.api import client as client_module
from worker.api.client import ConvoAIClient
from worker.api.errors import ApiConnectError, ApiTimeoutError, TransportError
from worker.api.tenants import Tenants
from worker.settings import Settings


@contextlib.contextmanager
def unanswered_port() -> Iterator[str]:
    """A loopback URL whose listening socket's queue is full: a new connection is neither
    accepted nor refused, it waits (the kernel drops its SYN), as a blackholed host does."""
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(8):
            filler = stack.enter_context(socket.socket())
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
        yield f"http://127.0.0.1:{port}"


async def test_a_connection_not_opened_in_time_is_a_connect_error() -> None:
    """A connection that cannot be opened within the connect timeout never carried the request:
    ApiConnectError, long before the request's own timeout."""
    with unanswered_port() as url:
        settings = Settings(
            api_base_url=url, api_connect_timeout_seconds=0.2, api_timeout_seconds=5
        )
        async with ConvoAIClient(settings) as client:
            with pytest.raises(ApiConnectError) as raised:
                await asyncio.wait_for(client.send(LIST), 2)
    assert raised.value.may_have_reached_api is False
    assert str(raised.value).startswith("agent.list: connect timeout: ")


async def test_a_request_near_its_deadline_waits_for_a_connection_only_that_long() -> None:
    """With less time left than the connect timeout, opening the connection gets only that."""
    with unanswered_port() as url:
        settings = Settings(api_base_url=url, api_connect_timeout_seconds=5)
        async with ConvoAIClient(settings) as client:
            with pytest.raises(ApiConnectError):
                await asyncio.wait_for(client.send(LIST, time_left=0.2), 2)


async def test_connections_open_at_once_are_bounded_by_the_setting() -> None:
    """`api_max_connections` requests are in flight at most; the others wait for a socket."""
    in_flight = 0
    most = 0

    async def slow(_: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.1)
        in_flight -= 1
        return web.json_response({})

    async with serving(answering(slow)) as origin:
        settings = Settings(api_base_url=origin, api_max_connections=2)
        async with ConvoAIClient(settings) as client:
            answers = await asyncio.gather(*(client.send(GET) for _ in range(6)))
    assert [answer.status for answer in answers] == [200] * 6
    assert most == 2


async def test_proxies_named_by_the_environment_are_not_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The API is reached directly: a proxy variable in the pod's environment (meant for other
    software) does not reroute requests that carry the tenant's credentials."""
    proxy = closed_port_url()
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)

    async with (
        serving(answering_ok()) as origin,
        ConvoAIClient(Settings(api_base_url=origin)) as client,
    ):
        assert (await client.send(GET)).status == 200


async def test_every_request_names_the_worker_and_json_bodies_say_so() -> None:
    """User-Agent `convoai-worker/<version>`; `application/json` exactly as the SDK sends it,
    only on requests with a JSON body."""
    seen: list[tuple[str, str | None, str | None]] = []

    async def record(request: web.Request) -> web.Response:
        headers = request.headers
        seen.append((request.method, headers.get("User-Agent"), headers.get("Content-Type")))
        return web.json_response({})

    async with (
        serving(answering(record)) as origin,
        ConvoAIClient(Settings(api_base_url=origin)) as client,
    ):
        await client.send(SPEAK)
        await client.send(GET)
    agent = f"convoai-worker/{__version__}"
    assert seen == [("POST", agent, "application/json"), ("GET", agent, None)]


async def test_a_tenants_headers_are_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Authorization header is computed for a served App ID's first request only: the
    per-request path does not encode credentials again."""
    built: list[str] = []
    authorization = Tenants.authorization

    def counted(self: Tenants, app_id: str) -> str | None:
        built.append(app_id)
        return authorization(self, app_id)

    monkeypatch.setattr(Tenants, "authorization", counted)

    async with serving(answering_ok()) as origin:
        settings = Settings(
            api_base_url=origin, app_id=GET.app_id, customer_id="id", customer_secret="secret"
        )
        async with ConvoAIClient(settings) as client:
            for _ in range(3):
                await client.send(GET)
    assert built == [GET.app_id]


async def test_a_client_whose_block_ended_refuses_to_send() -> None:
    """After `async with` the session is closed: sending says so instead of failing inside
    aiohttp."""
    client = ConvoAIClient(Settings())
    async with client:
        pass
    with pytest.raises(
        RuntimeError, match=r"^ConvoAIClient is used outside its `async with` block$"
    ):
        await client.send(GET)


@pytest.mark.parametrize(
    ("failure", "error", "text"),
    [
        (TimeoutError(), ApiTimeoutError, "agent.get: no response before the timeout"),
        (
            aiohttp.ClientPayloadError("truncated"),
            TransportError,
            "agent.get: ClientPayloadError('truncated')",
        ),
    ],
)
def test_other_transport_failures_name_the_operation(
    failure: aiohttp.ClientError | TimeoutError, error: type[TransportError], text: str
) -> None:
    """A timeout raised by aiohttp itself, and any other client error, become errors that name
    the operation and the failure, and may have reached the API."""
    mapped = client_module._transport_error("agent.get", failure)
    assert type(mapped) is error
    assert str(mapped) == text
    assert mapped.may_have_reached_api
