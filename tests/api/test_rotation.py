"""Credentials that rotate: a Secret update takes effect without a restart, requests already
sent finish with the credentials they left with, and an unusable file changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from aiohttp import web

from contracts import AgentList
from tests.api.secrets import publish
from tests.emulator.harness import serving
from worker.api.client import ConvoAIClient
from worker.api.requests import request_for
from worker.api.rotation import CredentialsWatcher
from worker.api.tenants import Tenants
from worker.settings import Settings

FILE = "credentials.json"
OLD = '{"app-a": {"auth_token": "old"}}'
NEW = '{"app-a": {"auth_token": "new"}}'
LIST = request_for(AgentList, "/v2/projects/app-a/agents", {}, app_id="app-a")


def watching(path: Path, **overrides: object) -> tuple[Tenants, CredentialsWatcher]:
    settings = Settings(api_credentials_file=str(path), **overrides)  # type: ignore[arg-type]
    tenants = Tenants.from_settings(settings)
    return tenants, CredentialsWatcher(tenants, 1.0, lambda _: None)


def test_a_secret_update_takes_effect_at_the_next_check(tmp_path: Path) -> None:
    """The kubelet's symlink swap changes no file the mounted path names directly: the watcher
    follows the links and sees the new file."""
    publish(tmp_path, {FILE: OLD})
    tenants, watcher = watching(tmp_path / FILE)
    assert not watcher.check()
    publish(tmp_path, {FILE: NEW})
    assert watcher.check()
    assert tenants.authorization("app-a") == "agora token=new"
    assert not watcher.check()  # nothing changed since


def test_an_unusable_file_keeps_the_credentials_in_force(tmp_path: Path) -> None:
    """A file caught half written is reported and ignored; its next change is read again."""
    path = tmp_path / FILE
    path.write_text(OLD)
    tenants, watcher = watching(path)
    path.write_text('{"app-a": {"auth_to')
    assert not watcher.check()
    assert tenants.authorization("app-a") == "agora token=old"
    path.write_text(NEW)
    assert watcher.check()
    assert tenants.authorization("app-a") == "agora token=new"


def test_a_renewed_token_file_is_read_again_and_masked_before_use(tmp_path: Path) -> None:
    """A token kept in its own file (renewed by a sidecar, say) is watched like the file; the
    log masker learns the new token before any request carries it."""
    token = tmp_path / "token"
    token.write_text("first\n")
    path = tmp_path / FILE
    path.write_text(f'{{"app-a": {{"auth_token_file": "{token}"}}}}')
    tenants = Tenants.from_settings(Settings(api_credentials_file=str(path)))
    masked_when_in_force: list[bool] = []

    def mask(secrets: Iterable[str]) -> None:
        masked_when_in_force.append(tenants.authorization("app-a") == "agora token=first")
        assert "second-token" in set(secrets)

    watcher = CredentialsWatcher(tenants, 1.0, mask)
    assert tenants.authorization("app-a") == "agora token=first"
    token.write_text("second-token\n")
    assert watcher.check()
    assert tenants.authorization("app-a") == "agora token=second-token"
    assert masked_when_in_force == [True]  # masked while the old token was still the one used


async def test_rotation_signs_the_next_requests_and_spares_those_in_flight(
    tmp_path: Path,
) -> None:
    """A request sent before the update completes with the old credentials; every request
    after it carries the new ones (the client's header cache is rebuilt)."""
    seen: list[str | None] = []
    release = asyncio.Event()

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        if len(seen) == 1:
            await release.wait()  # the first request is in flight during the update
        return web.json_response({"list": []})

    app = web.Application()
    app.router.add_get("/v2/projects/{app}/agents", record)
    publish(tmp_path, {FILE: OLD})
    async with serving(app) as origin:
        tenants, watcher = watching(tmp_path / FILE, api_base_url=origin)
        async with ConvoAIClient(Settings(api_base_url=origin), tenants) as client:
            in_flight = asyncio.create_task(client.send(LIST))
            for _ in range(500):  # until the request reached the server, at most 5 s
                if seen:
                    break
                await asyncio.sleep(0.01)
            publish(tmp_path, {FILE: NEW})
            assert watcher.check()
            release.set()
            assert (await in_flight).status == 200
            await client.send(LIST)
            await client.send(LIST)
    assert seen == ["agora token=old", "agora token=new", "agora token=new"]


def test_a_reload_keeps_what_is_known_of_the_regions(tmp_path: Path) -> None:
    """A new token with the same base URLs leaves a region that failed set aside."""
    urls = '"base_urls": ["http://a.test", "http://b.test"]'
    path = tmp_path / FILE
    path.write_text(f'{{"app-a": {{"auth_token": "old", {urls}}}}}')
    tenants, watcher = watching(path)
    tenants.regions("app-a").failed("http://a.test", "test")
    path.write_text(f'{{"app-a": {{"auth_token": "new-token", {urls}}}}}')
    assert watcher.check()
    assert tenants.regions("app-a").current() == "http://b.test"
