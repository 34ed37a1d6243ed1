"""Headers a command adds: only names the operator allows, sent as given, never in a refusal."""

from __future__ import annotations

import msgspec
import pytest
from aiohttp import web

from contracts import decode_command
from tests.emulator.harness import serving
from tests.execution.conftest import Env
from worker.api.client import ConvoAIClient
from worker.api.headers import ExtraHeaders
from worker.api.requests import build_request
from worker.redaction import MASK, mask_secret_fields
from worker.settings import Settings, SettingsError

SECRET_VALUE = "preview-key-0123456789"
GET = {"command": "agent.get", "id": "g", "agent_id": "a1"}


async def test_an_allowed_header_is_sent_with_the_request() -> None:
    """The command's header goes out as given, next to the worker's own headers."""
    seen: list[dict[str, str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"agent_id": "a1"})

    app = web.Application()
    app.router.add_get("/{tail:.*}", record)
    command = decode_command(
        msgspec.json.encode({**GET, "api_headers": {"X-Agora-Preview": "voice-2"}})
    )
    async with serving(app) as origin:
        settings = Settings(api_base_url=origin, auth_token="t", app_id="app")
        async with ConvoAIClient(settings) as client:
            request = build_request(command.command, command.rest, app_id="app", agent_id="a1")
            await client.send(request)
    assert seen[0]["X-Agora-Preview"] == "voice-2"
    assert seen[0]["Authorization"] == "agora token=t"


async def test_a_header_not_allowed_is_rejected_before_anything_is_sent(env: Env) -> None:
    """Another name (in any case the list does not have) is `rejected`; the refusal names the
    header, never its value."""
    await env.configure(api_extra_headers="x-agora-preview")
    allowed = await env.run({**GET, "api_headers": {"X-AGORA-PREVIEW": "1"}})
    assert allowed.result.error is None or allowed.result.error.code != "header_not_allowed"
    sent = len(env.emulator.requests())
    refused = await env.run({**GET, "id": "g2", "api_headers": {"X-Api-Key": SECRET_VALUE}})
    assert refused.result.outcome == "rejected"
    assert refused.result.error is not None
    assert refused.result.error.code == "header_not_allowed"
    assert "X-Api-Key" in refused.result.error.message
    assert SECRET_VALUE not in refused.result.error.message
    assert len(env.emulator.requests()) == sent


@pytest.mark.parametrize("name", ["Authorization", "content-type", "Host"])
def test_headers_the_worker_sets_cannot_be_allowed(name: str) -> None:
    """The operator cannot let a command replace the credentials or the framing."""
    with pytest.raises(SettingsError, match="the worker sets it"):
        ExtraHeaders.from_settings(Settings(api_extra_headers=f"X-Agora-Preview,{name}"))


def test_a_secret_looking_header_is_masked_where_a_command_is_logged() -> None:
    """A command's fields reach logs through the secret-name masking: a key header is masked."""
    masked = mask_secret_fields({"api_headers": {"X-Api-Key": SECRET_VALUE, "X-Mode": "a"}})
    assert masked == {"api_headers": {"X-Api-Key": MASK, "X-Mode": "a"}}
