"""Regional failover: requests safe to resend leave a region that fails for the next one, the
others stay with the first region unless it refused the connection; each tenant's requests go
to its own base URLs."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import pytest
from aiohttp import web

from contracts import AgentGet, AgentList, AgentSpeak
from tests.emulator.harness import answering, serving
from tests.logs import captured_logs
from worker.api import regions as regions_module
from worker.api.client import ConvoAIClient
from worker.api.errors import ApiError, ApiStatusError
from worker.api.regions import Regions, area_urls
from worker.api.requests import request_for
from worker.api.tenants import Tenants
from worker.settings import Settings

APP = "app-a"
AGENTS = f"/v2/projects/{APP}/agents"
LIST = request_for(AgentList, AGENTS, {}, app_id=APP)
GET = request_for(AgentGet, f"{AGENTS}/a1", {}, app_id=APP)
SPEAK = request_for(AgentSpeak, f"{AGENTS}/a1/speak", {"text": "hi"}, app_id=APP)


def closed_port_url() -> str:
    """A loopback URL where nothing listens: the connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def recording(seen: list[str], status: int = 200) -> web.Application:
    """A region that records the operations it receives and answers them with `status`."""

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response({"agent_id": "a1", "list": []}, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


async def test_a_refused_region_is_left_at_once_by_every_request() -> None:
    """First region down: a refused connection proves nothing was sent, so list, get and speak
    are all answered by the second region within the same send."""
    seen: list[str] = []
    dead = closed_port_url()
    async with serving(recording(seen)) as alive:
        settings = Settings(api_base_urls=f"{dead},{alive}")
        async with ConvoAIClient(settings) as client:
            assert (await client.send(LIST)).status == 200
            assert (await client.send(GET)).status == 200
            assert (await client.send(SPEAK)).status == 200
    assert seen == [AGENTS, f"{AGENTS}/a1", f"{AGENTS}/a1/speak"]


async def test_a_region_answering_5xx_is_set_aside_for_the_next_attempt() -> None:
    """A 503 from the first region sends the retry of a list to the second; a speak's next
    attempt still goes to the first region."""
    first: list[str] = []
    second: list[str] = []
    async with serving(recording(first, 503)) as sick, serving(recording(second)) as alive:
        settings = Settings(api_base_urls=f"{sick},{alive}")
        async with ConvoAIClient(settings) as client:
            with pytest.raises(ApiStatusError):
                await client.send(LIST)
            assert (await client.send(LIST)).status == 200
            with pytest.raises(ApiStatusError):
                await client.send(SPEAK)
    assert first == [AGENTS, f"{AGENTS}/a1/speak"]
    assert second == [AGENTS]


async def test_a_region_set_aside_is_preferred_again_once_it_answers() -> None:
    """A speak (never resent elsewhere) answered by the first region brings it back at once:
    the next list goes there, not to the second region, before any cooldown ended."""
    first: list[str] = []
    second: list[str] = []
    statuses = [503]

    async def recovering(request: web.Request) -> web.Response:
        first.append(request.path)
        status = statuses.pop() if statuses else 200
        return web.json_response({"agent_id": "a1", "list": []}, status=status)

    async with serving(answering(recovering)) as sick, serving(recording(second)) as alive:
        settings = Settings(api_base_urls=f"{sick},{alive}", api_region_cooldown_seconds=600)
        async with ConvoAIClient(settings) as client:
            with pytest.raises(ApiStatusError):
                await client.send(LIST)
            assert (await client.send(SPEAK)).status == 200
            assert (await client.send(LIST)).status == 200
    assert first == [AGENTS, f"{AGENTS}/a1/speak", AGENTS]
    assert second == []


async def test_setting_a_region_aside_says_why() -> None:
    """The warning names what went wrong in the region: its status, the transport failure, or
    the timeout."""
    slow_seen: list[str] = []

    async def slow(request: web.Request) -> web.Response:
        slow_seen.append(request.path)
        await asyncio.sleep(1)
        return web.json_response({})

    async with (
        serving(recording([], 500)) as sick,
        serving(answering(slow)) as stuck,
        serving(recording([])) as alive,
    ):
        refused = closed_port_url()
        cases = [(sick, "HTTP 500"), (stuck, "timeout"), (refused, "ApiConnectError")]
        for failing, why in cases:
            settings = Settings(api_base_urls=f"{failing},{alive}", api_timeout_seconds=0.2)
            async with ConvoAIClient(settings) as client:
                with captured_logs(regions_module) as logs, contextlib.suppress(ApiError):
                    await client.send(SPEAK)  # a refused one goes on to `alive`
            aside = [line for line in logs if line["event"] == "api_region_set_aside"]
            assert [(line["base_url"], line["reason"]) for line in aside] == [(failing, why)]
    assert slow_seen == [f"{AGENTS}/a1/speak"]


def test_a_region_set_aside_is_preferred_again_after_the_cooldown() -> None:
    """The first region is used again once its cooldown has passed."""
    now = [0.0]
    regions = Regions(["http://a", "http://b"], cooldown_seconds=30, clock=lambda: now[0])
    regions.failed("http://a", "test")
    assert regions.current() == "http://b"
    now[0] = 31.0
    assert regions.current() == "http://a"


async def test_each_tenant_sends_to_its_own_base_url(tmp_path: Path) -> None:
    """The credentials file's base URL (or region) decides where a tenant's requests go."""
    own: list[str] = []
    shared: list[str] = []
    async with serving(recording(own)) as url_a, serving(recording(shared)) as default:
        path = tmp_path / "credentials.json"
        path.write_text(
            f'{{"app-a": {{"auth_token": "a", "base_url": "{url_a}"}},'
            ' "app-b": {"auth_token": "b"}, "app-c": {"auth_token": "c", "region": "cn"}}'
        )
        settings = Settings(api_base_url=default, api_credentials_file=str(path))
        tenants = Tenants.from_settings(settings)
        async with ConvoAIClient(settings, tenants) as client:
            await client.send(LIST)
            await client.send(
                request_for(AgentList, "/v2/projects/app-b/agents", {}, app_id="app-b")
            )
    assert (own, shared) == ([AGENTS], ["/v2/projects/app-b/agents"])
    assert tenants.regions("app-c").urls == area_urls("cn")
    assert tenants.regions("app-c").primary == (
        "https://api-cn-east-1.sd-rtn.com/cn/api/conversational-ai-agent"
    )
