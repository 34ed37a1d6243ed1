"""Our request for a command is the request the official SDK sends for the same operation.

For each of the 19 operations the SDK (`agora-agents` 2.12, pool client, Basic auth) and the
worker's client send to one recording server; method, path, raw query string, body bytes,
`Authorization` and the presence of `content-type` must be identical.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple

import httpx
import msgspec
import pytest
from aiohttp import web

from contracts import decode_command
from tests.emulator.harness import answering, serving
from worker.api.client import ConvoAIClient
from worker.api.requests import build_request
from worker.settings import Settings

pytestmark = [
    pytest.mark.filterwarnings("ignore:Valid config keys have changed:UserWarning"),
    pytest.mark.filterwarnings("ignore:Support for class-based `config`:DeprecationWarning"),
]

APP = "0123456789abcdef0123456789abcdef"
AGENT = "1NT29X10YHxxxxxWJOXLYHNYB"
NUMBER = "+11234567890"
CUSTOMER_ID, CUSTOMER_SECRET = "customer-id", "customer-secret"
PROPERTIES: dict[str, Any] = {
    "channel": "room-1",
    "token": "rtc-token",
    "agent_rtc_uid": "1001",
    "remote_rtc_uids": ["1002"],
    "idle_timeout": 120,
    "asr": {"language": "en-US", "vendor": "ares"},
    "llm": {
        "url": "https://api.openai.com/v1/chat/completions",
        "api_key": "<key>",
        "system_messages": [{"role": "system", "content": "Sois bref. 🙂"}],
        "params": {"model": "gpt-4o-mini", "temperature": 0.7},
        "max_history": 32,
    },
    "tts": {"vendor": "microsoft", "params": {"key": "k", "region": "eastus"}},
    "labels": {"team": "blue"},
    "future_option": {"nested": [1, 2.5, None, True]},
}
SIP = {
    "to_number": "+19876543210",
    "from_number": NUMBER,
    "rtc_uid": "100",
    "rtc_token": "sip-token",
}

SdkCall = Callable[[Any], Awaitable[Any]]


class Case(NamedTuple):
    """The same operation written as an SDK call and as a command."""

    sdk: SdkCall
    command: dict[str, Any]


async def _pages(pager: Awaitable[Any]) -> list[Any]:
    return [item async for item in await pager]


CASES: dict[str, Case] = {
    "agent.start": Case(
        lambda sdk: sdk.agents.start(
            APP,
            name="support-bot",
            properties=PROPERTIES,
            preset="deepgram_nova_3",
            pipeline_id="pipe-1",
        ),
        # producer order differs from the SDK's on purpose
        {"properties": PROPERTIES, "pipeline_id": "pipe-1", "preset": "deepgram_nova_3"}
        | {"command": "agent.start", "id": "c", "app_id": APP, "name": "support-bot"},
    ),
    "agent.stop": Case(
        lambda sdk: sdk.agents.stop(APP, AGENT),
        {"command": "agent.stop", "id": "c", "app_id": APP, "agent_id": AGENT},
    ),
    "agent.update": Case(
        lambda sdk: sdk.agents.update(
            APP,
            AGENT,
            properties={"token": "t2", "llm": {"params": {"model": "gpt-4o", "max_tokens": 1024}}},
        ),
        {
            "command": "agent.update",
            "id": "c",
            "app_id": APP,
            "agent_id": AGENT,
            "properties": {
                "token": "t2",
                "llm": {"params": {"model": "gpt-4o", "max_tokens": 1024}},
            },
        },
    ),
    "agent.speak": Case(
        lambda sdk: sdk.agents.speak(
            APP,
            AGENT,
            text='Grüß dich 👋 "quoted" \\ \n\t',
            priority="INTERRUPT",
            interruptable=False,
        ),
        {
            "command": "agent.speak",
            "id": "c",
            "app_id": APP,
            "agent_id": AGENT,
            "interruptable": False,
            "priority": "INTERRUPT",
            "text": 'Grüß dich 👋 "quoted" \\ \n\t',
        },
    ),
    "agent.interrupt": Case(
        lambda sdk: sdk.agents.interrupt(APP, AGENT),
        {"command": "agent.interrupt", "id": "c", "app_id": APP, "agent_id": AGENT},
    ),
    "agent.think": Case(
        lambda sdk: sdk.agent_management.agent_think(
            APP,
            AGENT,
            text="The user clicked buy.",
            on_listening_action="inject",
            on_thinking_action="interrupt",
            on_speaking_action="ignore",
            interruptable=True,
            metadata={"publisher": "user123"},
        ),
        {
            "command": "agent.think",
            "id": "c",
            "app_id": APP,
            "agent_id": AGENT,
            "metadata": {"publisher": "user123"},
            "text": "The user clicked buy.",
            "on_speaking_action": "ignore",
            "on_thinking_action": "interrupt",
            "on_listening_action": "inject",
            "interruptable": True,
        },
    ),
    "agent.get": Case(
        lambda sdk: sdk.agents.get(APP, AGENT),
        {"command": "agent.get", "id": "c", "app_id": APP, "agent_id": AGENT},
    ),
    "agent.list": Case(
        lambda sdk: _pages(
            sdk.agents.list(
                APP,
                channel="room 1/ü",
                from_time=1700000000.5,
                to_time=1700003600,
                state="0,1,2",
                limit=5,
                cursor="AG0",
            )
        ),
        {
            "command": "agent.list",
            "id": "c",
            "app_id": APP,
            "cursor": "AG0",
            "limit": 5,
            "state": "0,1,2",
            "to_time": 1700003600,
            "from_time": 1700000000.5,
            "channel": "room 1/ü",
        },
    ),
    "agent.history": Case(
        lambda sdk: sdk.agents.get_history(APP, AGENT),
        {"command": "agent.history", "id": "c", "app_id": APP, "agent_id": AGENT},
    ),
    "agent.turns": Case(
        lambda sdk: sdk.agents.get_turns(APP, AGENT, page_index=2, page_size=20),
        {
            "command": "agent.turns",
            "id": "c",
            "app_id": APP,
            "agent_id": AGENT,
            "page_size": 20,
            "page_index": 2,
        },
    ),
    "call.start": Case(
        lambda sdk: sdk.telephony.call(
            APP, name="support-call", sip=SIP, properties=PROPERTIES, pipeline_id="pipe-1"
        ),
        {
            "command": "call.start",
            "id": "c",
            "app_id": APP,
            "pipeline_id": "pipe-1",
            "properties": PROPERTIES,
            "sip": SIP,
            "name": "support-call",
        },
    ),
    "call.hangup": Case(
        lambda sdk: sdk.telephony.hangup(APP, AGENT),
        {"command": "call.hangup", "id": "c", "app_id": APP, "agent_id": AGENT},
    ),
    "call.get": Case(
        lambda sdk: sdk.telephony.get(APP, AGENT),
        {"command": "call.get", "id": "c", "app_id": APP, "agent_id": AGENT},
    ),
    "call.list": Case(
        lambda sdk: _pages(
            sdk.telephony.list(
                APP,
                number=NUMBER,
                from_time=1700000000,
                to_time=1700086400,
                type="outbound",
                limit=10,
                cursor="AG9",
            )
        ),
        {
            "command": "call.list",
            "id": "c",
            "app_id": APP,
            "type": "outbound",
            "number": NUMBER,
            "limit": 10,
            "cursor": "AG9",
            "from_time": 1700000000,
            "to_time": 1700086400,
        },
    ),
    "number.add": Case(
        lambda sdk: sdk.phone_numbers.add(
            provider="byo",
            phone_number=NUMBER,
            label="Sales Hotline",
            inbound=True,
            outbound=False,
            inbound_config={"allowed_addresses": ["112.126.15.64/27"]},
            outbound_config={"address": "u:p@sip.example.com", "transport": "tls"},
        ),
        {
            "command": "number.add",
            "id": "c",
            "outbound_config": {"address": "u:p@sip.example.com", "transport": "tls"},
            "inbound_config": {"allowed_addresses": ["112.126.15.64/27"]},
            "outbound": False,
            "inbound": True,
            "label": "Sales Hotline",
            "phone_number": NUMBER,
            "provider": "byo",
        },
    ),
    "number.get": Case(
        lambda sdk: sdk.phone_numbers.get(NUMBER),
        {"command": "number.get", "id": "c", "phone_number": NUMBER},
    ),
    "number.list": Case(
        lambda sdk: sdk.phone_numbers.list(),
        {"command": "number.list", "id": "c"},
    ),
    "number.update": Case(
        lambda sdk: sdk.phone_numbers.update(
            NUMBER, inbound_config={"pipeline_id": "pipe-2"}, outbound_config=None
        ),
        {
            "command": "number.update",
            "id": "c",
            "phone_number": NUMBER,
            "outbound_config": None,
            "inbound_config": {"pipeline_id": "pipe-2"},
        },
    ),
    "number.delete": Case(
        lambda sdk: sdk.phone_numbers.delete(NUMBER),
        {"command": "number.delete", "id": "c", "phone_number": NUMBER},
    ),
}


class Recorded(NamedTuple):
    """What identifies a request on the wire."""

    method: str
    path: str
    query: str
    body: bytes
    authorization: str | None
    has_content_type: bool


class Recorder:
    """An HTTP server that records every request and answers like a permissive API."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            Recorded(
                request.method,
                request.rel_url.raw_path,
                request.rel_url.raw_query_string,
                await request.read(),
                request.headers.get("Authorization"),
                "Content-Type" in request.headers,
            )
        )
        listing = request.method == "GET" and request.path.endswith("/v2/phone-numbers")
        return web.json_response([] if listing else {})

    def take(self) -> Recorded:
        """The only request recorded since the last call."""
        assert len(self.requests) == 1, self.requests
        return self.requests.pop()


class Harness(NamedTuple):
    recorder: Recorder
    origin: str


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    """A recording server on an ephemeral loopback port."""
    recorder = Recorder()
    async with serving(answering(recorder.handle)) as origin:
        yield Harness(recorder, origin)


class Credentials(NamedTuple):
    """Basic credentials or an auth token, given to both clients."""

    customer_id: str | None = CUSTOMER_ID
    customer_secret: str | None = CUSTOMER_SECRET
    auth_token: str | None = None


BASIC = Credentials()


async def sdk_request(
    harness: Harness,
    monkeypatch: pytest.MonkeyPatch,
    call: SdkCall,
    credentials: Credentials = BASIC,
) -> Recorded:
    """The request the SDK's pool client sends for `call`."""
    from agora_agent.core.domain import Area  # noqa: PLC0415 - the SDK is a test-only dependency
    from agora_agent.pool_client import AsyncAgora  # noqa: PLC0415

    monkeypatch.setenv("AGORA_AGENTS_API_BASE_URL", harness.origin)
    async with httpx.AsyncClient(timeout=10) as http:
        sdk = AsyncAgora(
            area=Area.US,
            app_id=APP,
            app_certificate="0" * 32,
            customer_id=credentials.customer_id,
            customer_secret=credentials.customer_secret,
            auth_token=credentials.auth_token,
            httpx_client=http,
        )
        await call(sdk)
    return harness.recorder.take()


async def our_request(
    harness: Harness, command: dict[str, Any], credentials: Credentials = BASIC
) -> Recorded:
    """The request the worker's client sends for `command`."""
    decoded = decode_command(msgspec.json.encode(command))
    settings = Settings(
        api_base_url=f"{harness.origin}/api/conversational-ai-agent",
        app_id=APP,
        customer_id=credentials.customer_id or "",
        customer_secret=credentials.customer_secret or "",
        auth_token=credentials.auth_token or "",
    )
    request = build_request(
        decoded.command,
        decoded.rest,
        app_id=decoded.command.app_id or APP,
        agent_id=getattr(decoded.command, "agent_id", None),
        phone_number=getattr(decoded.command, "phone_number", None),
    )
    async with ConvoAIClient(settings) as client:
        await client.send(request)
    return harness.recorder.take()


def test_every_operation_has_a_case() -> None:
    """The cases cover all 19 commands."""
    from contracts import COMMAND_TYPES  # noqa: PLC0415 - only this test needs the list

    assert sorted(CASES) == sorted(COMMAND_TYPES)


@pytest.mark.parametrize("operation", sorted(CASES))
async def test_request_matches_the_sdk(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    """Method, path, raw query, body bytes, Authorization and content-type presence match."""
    case = CASES[operation]
    theirs = await sdk_request(harness, monkeypatch, case.sdk)
    ours = await our_request(harness, case.command)
    assert ours == theirs
    assert theirs.path.startswith("/api/conversational-ai-agent/v2/")


async def test_phone_numbers_go_on_the_path_verbatim(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`+11234567890` is not percent-encoded, by the SDK or by us."""
    ours = await our_request(harness, CASES["number.get"].command)
    assert ours.path == f"/api/conversational-ai-agent/v2/phone-numbers/{NUMBER}"


async def test_token_auth_matches_the_sdk(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an auth token both send `Authorization: agora token=<token>`."""
    case = CASES["agent.speak"]
    token = Credentials(customer_id=None, customer_secret=None, auth_token="007abc")
    theirs = await sdk_request(harness, monkeypatch, case.sdk, token)
    ours = await our_request(harness, case.command, token)
    assert ours == theirs
    assert ours.authorization == "agora token=007abc"


async def test_unknown_fields_travel_like_the_sdks_additional_parameters(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fields the SDK does not know follow its own, as `additional_*_parameters` would put them."""
    speak = await sdk_request(
        harness,
        monkeypatch,
        lambda sdk: sdk.agents.speak(
            APP,
            AGENT,
            text="hi",
            request_options={"additional_body_parameters": {"voice_style": "calm"}},
        ),
    )
    command = {"command": "agent.speak", "id": "c", "app_id": APP, "agent_id": AGENT}
    assert await our_request(harness, command | {"voice_style": "calm", "text": "hi"}) == speak
    listing = await sdk_request(
        harness,
        monkeypatch,
        lambda sdk: _pages(
            sdk.agents.list(
                APP, limit=5, request_options={"additional_query_parameters": {"region": "eu"}}
            )
        ),
    )
    command = {"command": "agent.list", "id": "c", "app_id": APP}
    assert await our_request(harness, command | {"region": "eu", "limit": 5}) == listing


async def test_exponent_floats_differ_only_in_notation(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A float that needs an exponent is `1e-7` in our body and `1e-07` in the SDK's.

    Both are the same JSON number; this is the one place the bodies are equal only once parsed.
    """
    properties = PROPERTIES | {"llm": {"params": {"temperature": 1e-7}}}
    theirs = await sdk_request(
        harness,
        monkeypatch,
        lambda sdk: sdk.agents.update(APP, AGENT, properties=properties),
    )
    command = {"command": "agent.update", "id": "c", "app_id": APP, "agent_id": AGENT}
    ours = await our_request(
        harness,
        command | {"properties": properties},
    )
    assert b"1e-07" in theirs.body
    assert b"1e-7" in ours.body
    assert msgspec.json.decode(ours.body) == msgspec.json.decode(theirs.body)
    assert ours._replace(body=b"") == theirs._replace(body=b"")


@pytest.mark.parametrize("state", [2, "2", "RUNNING"])
async def test_a_list_state_in_any_accepted_form_goes_out_as_the_sdks_code(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, state: object
) -> None:
    """The SDK reference documents `state` as the enum's integer; `state=2` is on the wire."""
    theirs = await sdk_request(
        harness, monkeypatch, lambda sdk: _pages(sdk.agents.list(APP, state=2, limit=5))
    )
    command = {"command": "agent.list", "id": "c", "app_id": APP, "state": state, "limit": 5}
    ours = await our_request(harness, command)
    assert ours == theirs
    assert ours.query == "state=2&limit=5"
