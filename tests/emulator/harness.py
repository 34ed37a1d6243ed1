"""The emulator served in-process on an ephemeral loopback port, for tests of all layers."""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from worker.emulator.app import FAULTS, REQUESTS, STATE, build_app
from worker.emulator.config import EmulatorConfig
from worker.emulator.faults import Faults
from worker.emulator.requestlog import RequestLog
from worker.emulator.state import EmulatorState
from worker.settings import Settings

API_PATH = "/api/conversational-ai-agent"
APP_ID = "app-under-test"
CUSTOMER_ID = "customer"
CUSTOMER_SECRET = "secret"


class FakeClock:
    """A wall clock that only moves when told to."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RunningEmulator:
    """A served emulator: its URLs, its internals and a raw HTTP session to poke at it."""

    def __init__(self, app: web.Application, port: int, session: aiohttp.ClientSession) -> None:
        self.app = app
        self.origin = f"http://127.0.0.1:{port}"
        self.api_url = self.origin + API_PATH
        self.session = session

    @property
    def state(self) -> EmulatorState:
        return self.app[STATE]

    @property
    def faults(self) -> Faults:
        return self.app[FAULTS]

    @property
    def log(self) -> RequestLog:
        return self.app[REQUESTS]

    def requests(self, operation: str | None = None) -> list[dict[str, Any]]:
        """The request log as JSON objects (bodies parsed), oldest first."""
        return [entry.to_json() for entry in self.log.entries(operation)]

    def settings(self, **overrides: Any) -> Settings:
        """Worker settings aimed at this emulator with the test credentials."""
        values: dict[str, Any] = {
            "api_base_url": self.api_url,
            "customer_id": CUSTOMER_ID,
            "customer_secret": CUSTOMER_SECRET,
            "app_id": APP_ID,
            "api_timeout_seconds": 5.0,
            **overrides,
        }
        return Settings(**values)

    async def call(
        self, method: str, path: str, *, json: Any = None, auth: bool = True, **kwargs: Any
    ) -> tuple[int, Any]:
        """One raw request under the API path; returns status and JSON body (None if empty)."""
        headers = kwargs.pop("headers", {})
        if auth:
            headers.setdefault("Authorization", basic_auth())
        async with self.session.request(
            method, self.api_url + path, json=json, headers=headers, **kwargs
        ) as response:
            body = await response.read()
            return response.status, (await response.json() if body else None)


def basic_auth(customer_id: str = CUSTOMER_ID, secret: str = CUSTOMER_SECRET) -> str:
    """The Basic `Authorization` value of these credentials."""
    return "Basic " + base64.b64encode(f"{customer_id}:{secret}".encode()).decode()


@contextlib.asynccontextmanager
async def running_emulator(
    config: EmulatorConfig | None = None, *, clock: Callable[[], float] = time.time
) -> AsyncIterator[RunningEmulator]:
    """Serve an emulator (by default requiring the test credentials) for the block."""
    config = config or EmulatorConfig(customer_id=CUSTOMER_ID, customer_secret=CUSTOMER_SECRET)
    app = build_app(config, clock=clock)
    async with serving(app) as origin, aiohttp.ClientSession() as session:
        yield RunningEmulator(app, URL(origin).port or 0, session)


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` on an ephemeral loopback port for the block; yields its origin URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def answering(handle: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.Application:
    """An app whose `handle` answers every method on every path."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def answering_ok() -> web.Application:
    """An app that answers every request 200 with an empty JSON object."""

    async def ok(_: web.Request) -> web.Response:
        return web.json_response({})

    return answering(ok)


LLM = {"url": "https://llm.invalid/v1/chat/completions", "api_key": "llm-key"}
TTS = {"vendor": "microsoft", "params": {"key": "tts-key", "region": "eastus"}}


def call_body(name: str = "support-call") -> dict[str, Any]:
    """A minimal valid outbound call body: the call's agent joins "call-room"."""
    return {
        "name": name,
        "sip": {
            "to_number": "+19876543210",
            "from_number": "+11234567890",
            "rtc_uid": "100",
            "rtc_token": "t",
        },
        "properties": {
            "channel": "call-room",
            "token": "t",
            "agent_rtc_uid": "111",
            "remote_rtc_uids": ["100"],
            "labels": {"team": "calls"},
            "llm": LLM,
            "tts": TTS,
        },
    }


def start_body(name: str = "agent-1", channel: str = "room-1", **extra: Any) -> dict[str, Any]:
    """A minimal valid join body."""
    return {
        "name": name,
        "properties": {
            "channel": channel,
            "token": "rtc-token",
            "agent_rtc_uid": "1001",
            "remote_rtc_uids": ["1002"],
            "llm": LLM,
            "tts": TTS,
        },
        **extra,
    }
