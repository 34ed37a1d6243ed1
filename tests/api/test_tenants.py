"""Tenants: App IDs outside the served set are refused; each App ID signs with its own account
and checks webhooks with its own NCS secret."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from contracts import AgentList
from tests.emulator.harness import serving
from worker.api.client import ConvoAIClient
from worker.api.requests import request_for
from worker.api.tenants import Tenants, authorization
from worker.settings import Settings, SettingsError

BASIC_A = "Basic YS1pZDphLXNlY3JldA=="  # a-id:a-secret
CREDENTIALS = (
    '{"app-a": {"customer_id": "a-id", "customer_secret": "a-secret", "webhook_secret": "a-ncs"},'
    ' "app-b": {"auth_token": "b-token"}}'
)


def test_one_app_id_is_served_with_the_default_credentials() -> None:
    """One tenant: the worker's credentials and NCS secret for `CONVOAI_APP_ID`."""
    single = Tenants.from_settings(
        Settings(app_id="app-a", customer_id="a-id", customer_secret="a-secret", webhook_secret="w")
    )
    assert single.refusal("app-a") is None
    assert single.authorization("app-a") == BASIC_A
    assert (single.webhook_secret("app-a"), single.single) == ("w", "app-a")


def test_the_allowed_list_refuses_other_app_ids() -> None:
    """`CONVOAI_ALLOWED_APP_IDS` is the whole list of App IDs served."""
    listed = Tenants.from_settings(Settings(app_id="app-a", allowed_app_ids="app-a, app-b"))
    assert listed.refusal("app-a") is None
    assert listed.refusal("app-b") is None
    assert listed.refusal("app-c") == (
        "App ID 'app-c' is not served (the App IDs of CONVOAI_ALLOWED_APP_IDS)"
    )
    assert listed.single is None


def test_a_credentials_file_signs_each_app_id_with_its_own_account(tmp_path: Path) -> None:
    """Per-App-ID credentials; an App ID without an entry is refused, never signed otherwise."""
    path = tmp_path / "credentials.json"
    path.write_text(CREDENTIALS)
    served = Tenants.from_settings(
        Settings(api_credentials_file=str(path), customer_id="default", customer_secret="s")
    )
    assert served.authorization("app-a") == BASIC_A
    assert served.authorization("app-b") == "agora token=b-token"
    assert served.refusal("app-c") == (
        "App ID 'app-c' is not served (the App IDs of CONVOAI_API_CREDENTIALS_FILE)"
    )
    assert served.authorization("app-c") is None  # not the default account's
    assert (served.webhook_secret("app-a"), served.webhook_secret("app-b")) == ("a-ncs", "")


def test_the_allowed_list_narrows_the_credentials_file(tmp_path: Path) -> None:
    """Both settings given: only App IDs in the file and in the list are served."""
    path = tmp_path / "credentials.json"
    path.write_text(CREDENTIALS)
    served = Tenants.from_settings(
        Settings(api_credentials_file=str(path), allowed_app_ids="app-b,app-c")
    )
    assert served.served == {"app-b"}
    assert "CONVOAI_API_CREDENTIALS_FILE and CONVOAI_ALLOWED_APP_IDS" in str(
        served.refusal("app-a")
    )


def test_every_value_of_the_file_is_a_secret_to_mask(tmp_path: Path) -> None:
    """Logs mask whatever the file holds, and the Basic value made of a customer pair."""
    path = tmp_path / "credentials.json"
    path.write_text(CREDENTIALS)
    served = Tenants.from_settings(Settings(api_credentials_file=str(path)))
    assert set(served.secrets) == {
        "a-id",
        "a-secret",
        "a-ncs",
        BASIC_A.removeprefix("Basic "),
        "b-token",
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No such file or directory"),
        ("[1]", "Expected `object`, got `array`"),
        ('{"app-a": {"customer_id": "a", "password": "p"}}', "unknown field `password`"),
        ('{"app-a": {}}', "App ID 'app-a' has no customer_id nor auth_token"),
        ("{}", "no App ID in the file"),
    ],
)
def test_a_bad_credentials_file_is_named_at_startup(
    tmp_path: Path, content: str | None, message: str
) -> None:
    """Every mistake in the file is one error naming the variable, the file and the problem."""
    path = tmp_path / "credentials.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SettingsError, match=message) as raised:
        Tenants.from_settings(Settings(api_credentials_file=str(path)))
    assert str(raised.value).startswith(f"CONVOAI_API_CREDENTIALS_FILE={path}: ")


def test_one_webhook_secret_never_serves_several_app_ids(tmp_path: Path) -> None:
    """Any tenant knowing a shared NCS secret could forge the others' notices: refused."""
    path = tmp_path / "credentials.json"
    path.write_text(CREDENTIALS)
    listed = Settings(allowed_app_ids="app-a,app-b", webhook_secret="w")
    with pytest.raises(SettingsError, match="CONVOAI_WEBHOOK_SECRET serves a worker of one"):
        Tenants.from_settings(listed)
    with_file = Settings(api_credentials_file=str(path), webhook_secret="w")
    with pytest.raises(SettingsError, match="CONVOAI_WEBHOOK_SECRET is not used with"):
        Tenants.from_settings(with_file)


def test_authorization_is_what_the_sdk_sends() -> None:
    """Token wins over Basic; no credentials, no header."""
    assert authorization(Settings(customer_id="a-id", customer_secret="a-secret")) == BASIC_A
    assert (
        authorization(Settings(auth_token="t", customer_id="x", customer_secret="y"))
        == "agora token=t"
    )
    assert authorization(Settings()) is None


async def test_the_client_signs_each_request_with_its_own_app_ids_credentials(
    tmp_path: Path,
) -> None:
    """Requests of two App IDs through one client, alternating: each carries its App ID's
    `Authorization`, never the one the client built for the other (its header cache is per App
    ID and content type)."""
    seen: list[tuple[str, str | None]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((request.match_info["app"], request.headers.get("Authorization")))
        return web.json_response({"list": []})

    await list_agents(record, ("app-a", "app-b", "app-a", "app-b"), tmp_path)
    assert seen == [
        ("app-a", BASIC_A),
        ("app-b", "agora token=b-token"),
        ("app-a", BASIC_A),
        ("app-b", "agora token=b-token"),
    ]


async def test_a_cookie_one_tenants_response_sets_goes_out_with_no_request(
    tmp_path: Path,
) -> None:
    """One session serves every App ID: a `Set-Cookie` in app-a's response (a load balancer's
    affinity cookie, say) is not kept, so app-b's requests, and app-a's, carry no `Cookie`."""
    cookies: list[str | None] = []

    async def record(request: web.Request) -> web.Response:
        cookies.append(request.headers.get("Cookie"))
        response = web.json_response({"list": []})
        response.set_cookie("affinity", request.match_info["app"])
        return response

    # by name: aiohttp's default cookie jar keeps no cookie from an IP address
    await list_agents(record, ("app-a", "app-b", "app-a"), tmp_path, host="localhost")
    assert cookies == [None, None, None]


async def list_agents(
    handler: Callable[[web.Request], Awaitable[web.Response]],
    app_ids: tuple[str, ...],
    tmp_path: Path,
    *,
    host: str = "127.0.0.1",
) -> None:
    """One client with the two App IDs' credentials sends agent.list for each of `app_ids`, in
    order, to `handler` (served on loopback, reached as `host`)."""
    app = web.Application()
    app.router.add_get("/v2/projects/{app}/agents", handler)
    path = tmp_path / "credentials.json"
    path.write_text(CREDENTIALS)
    async with serving(app) as origin:
        base_url = origin.replace("127.0.0.1", host)
        settings = Settings(api_base_url=base_url, api_credentials_file=str(path))
        async with ConvoAIClient(settings, Tenants.from_settings(settings)) as client:
            for app_id in app_ids:
                path_of = f"/v2/projects/{app_id}/agents"
                await client.send(request_for(AgentList, path_of, {}, app_id=app_id))
