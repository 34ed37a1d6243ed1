"""Credentials rotated and a region lost while commands run: what takes effect, what fails.

Setup (printed with the figures): one process; the worker's `Executor` and `ConvoAIClient`
(the code the worker runs) send commands to the emulator over loopback HTTP, C command loops at
once for D seconds, each running agent.get, agent.list and agent.speak in turn against agents
started first.

rotate   the credentials file is a Kubernetes Secret volume (`..data` symlink swap). At 2 s the
         Secret is updated from a customer pair to a token, as the kubelet does it; 5 s later the
         emulator refuses the old pair (401), as a revoked key would be. Prints when the first
         request with the new credentials arrived after the swap, when the last one with the old
         credentials did, and every result that did not succeed (the promise: none).
outage   two regions: the first reaches the emulator through a TCP forwarder, the second
         directly. At 2 s the forwarder dies (listener closed, live connections reset). Prints,
         per operation, results by outcome before and after the outage and which region answered
         after it: every operation fails over once the listener is gone (a refused connection
         proves nothing was sent); a speak in flight when the connections were reset is not
         sent again (it may have reached the first region) and ends `unknown`.

Usage: uv run python bench/bench_rotation.py [--seconds 8] [--loops 32] [--poll 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import platform
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from contracts import decode_command
from tests.api.secrets import publish
from tests.emulator.harness import basic_auth, serving, start_body
from worker.agents.directory import AgentDirectory
from worker.api.client import ConvoAIClient
from worker.api.rotation import CredentialsWatcher
from worker.api.tenants import Tenants
from worker.emulator.app import build_app
from worker.emulator.config import EmulatorConfig
from worker.execution import Executor
from worker.settings import Settings

APP = "bench-app"
PATH = "/api/conversational-ai-agent"
AGENTS = 20
EVENT_AT = 2.0  # seconds into the run: the Secret update, or the outage
REVOKE_AFTER = 5.0  # seconds after the update: the old credentials are refused
OLD_PAIR = {"customer_id": "old-id", "customer_secret": "old-secret"}
OLD = basic_auth(*OLD_PAIR.values())
NEW = "agora token=new-token"
_ids = itertools.count()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Observed:
    """What the emulator saw: (time, Authorization, Host) per request; refuses revoked keys."""

    def __init__(self) -> None:
        self.requests: list[tuple[float, str | None, str]] = []
        self.revoked: str | None = None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        auth = request.headers.get("Authorization")
        if self.revoked is not None and auth == self.revoked:
            return web.json_response({"detail": "revoked"}, status=401)
        self.requests.append((time.monotonic(), auth, request.host))
        return await handler(request)


def emulator(observed: Observed) -> web.Application:
    config = EmulatorConfig(
        customer_id=OLD_PAIR["customer_id"],
        customer_secret=OLD_PAIR["customer_secret"],
        auth_token=NEW.removeprefix("agora token="),
        max_agents_per_app=1000,
        request_log_size=1000,
    )
    app = build_app(config)
    app.middlewares.append(observed.middleware)
    return app


def command(tag: str, **fields: Any) -> bytes:
    return json.dumps({"command": tag, "id": f"c{next(_ids)}", "app_id": APP, **fields}).encode()


async def execute(executor: Executor, raw: bytes) -> tuple[str, str]:
    decoded = decode_command(raw)
    result = (await executor.execute(decoded, received_at=datetime.now(UTC))).result
    return result.command or "", result.outcome


async def start_agents(executor: Executor, run: str) -> list[str]:
    ids = []
    for n in range(AGENTS):
        body = start_body(f"{run}-{n}", channel=f"{run}-{n}")
        decoded = decode_command(command("agent.start", **body))
        result = (await executor.execute(decoded, received_at=datetime.now(UTC))).result
        assert result.outcome == "succeeded", result  # noqa: S101 - the setup must work
        ids.append(result.agent_id or "")
    return ids


async def load(
    executor: Executor, agents: list[str], loops: int, seconds: float, t0: float
) -> list[tuple[float, str, str]]:
    """Run the command loops; (time since t0 the command started, command, outcome) each."""
    results: list[tuple[float, str, str]] = []
    ends = t0 + seconds

    async def loop(n: int) -> None:
        for i in itertools.count(n):
            if time.monotonic() >= ends:
                return
            agent = agents[i % len(agents)]
            raw = (
                command("agent.get", agent_id=agent),
                command("agent.list", limit=5),
                command("agent.speak", agent_id=agent, text="hello"),
            )[i % 3]
            started = time.monotonic() - t0
            results.append((started, *await execute(executor, raw)))

    await asyncio.gather(*(loop(n) for n in range(loops)))
    return results


def settings(**overrides: Any) -> Settings:
    return Settings(app_id=APP, api_backoff_base_seconds=0.2, **overrides)


async def rotate(seconds: float, loops: int, poll: float) -> None:
    observed = Observed()
    with tempfile.TemporaryDirectory() as volume:
        secret = Path(volume)
        publish(
            secret,
            {"credentials.json": json.dumps({APP: OLD_PAIR})},
        )
        async with serving(emulator(observed)) as origin:
            config = settings(
                api_base_url=origin + PATH,
                api_credentials_file=str(secret / "credentials.json"),
                api_credentials_poll_seconds=poll,
            )
            tenants = Tenants.from_settings(config)
            watcher = CredentialsWatcher(tenants, poll, lambda _: None)
            async with ConvoAIClient(config, tenants) as client:
                executor = Executor(client, config, AgentDirectory(), tenants=tenants)
                agents = await start_agents(executor, "rot")
                watching = asyncio.create_task(watcher.run())
                t0 = time.monotonic()

                async def update() -> float:
                    await asyncio.sleep(EVENT_AT)
                    publish(
                        secret, {"credentials.json": json.dumps({APP: {"auth_token": "new-token"}})}
                    )
                    swapped = time.monotonic()
                    await asyncio.sleep(REVOKE_AFTER)
                    observed.revoked = OLD
                    return swapped

                swapped, results = await asyncio.gather(
                    update(), load(executor, agents, loops, seconds, t0)
                )
                watching.cancel()
    after = [(t, auth) for t, auth, _ in observed.requests if t >= swapped]
    first_new = min((t for t, auth in after if auth == NEW), default=None)
    last_old = max((t for t, auth in after if auth == OLD), default=None)
    outcomes = Counter(outcome for _, _, outcome in results)
    failed = sum(n for outcome, n in outcomes.items() if outcome != "succeeded")
    print(f"rotate: {len(results)} commands in {seconds:.0f} s ({loops} loops, poll {poll} s)")
    print(f"  first request with the new token: {_after(first_new, swapped)} after the swap")
    print(f"  last request with the old pair:   {_after(last_old, swapped)} after the swap")
    print(f"  old pair refused from {REVOKE_AFTER:.0f} s after the swap; outcomes {dict(outcomes)}")
    print(f"  results not succeeded: {failed}")


def _after(moment: float | None, since: float) -> str:
    return "never" if moment is None else f"{moment - since:.3f} s"


class Forwarder:
    """A TCP forwarder to the emulator: the first region, until `kill` takes it down."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            self.kill()

    def kill(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()  # connections reset, as in a zone that went away

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self._port)
        self._writers.update((writer, upstream_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


async def outage(seconds: float, loops: int) -> None:
    observed = Observed()
    async with serving(emulator(observed)) as origin:
        port = int(origin.rsplit(":", 1)[1])
        forwarder = Forwarder(port)
        async with forwarder.serving() as first:
            config = settings(
                api_base_urls=f"{first}{PATH},{origin}{PATH}",
                customer_id=OLD_PAIR["customer_id"],
                customer_secret=OLD_PAIR["customer_secret"],
            )
            async with ConvoAIClient(config) as client:
                executor = Executor(client, config, AgentDirectory())
                agents = await start_agents(executor, "out")
                t0 = time.monotonic()

                async def down() -> float:
                    await asyncio.sleep(EVENT_AT)
                    forwarder.kill()
                    return time.monotonic()

                killed, results = await asyncio.gather(
                    down(), load(executor, agents, loops, seconds, t0)
                )
    first_host = first.removeprefix("http://")
    print(
        f"outage: {len(results)} commands in {seconds:.0f} s ({loops} loops); "
        f"region 1 down at {EVENT_AT:.0f} s"
    )
    for operation in ("agent.get", "agent.list", "agent.speak"):
        before = Counter(o for t, c, o in results if c == operation and t < EVENT_AT)
        after = Counter(o for t, c, o in results if c == operation and t >= EVENT_AT)
        print(f"  {operation:<12} before {dict(before)}  after {dict(after)}")
    regions = Counter(
        "region 1" if host == first_host else "region 2"
        for t, _, host in observed.requests
        if t >= killed
    )
    print(f"  requests the emulator received after the outage, by region: {dict(regions)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--loops", type=int, default=32)
    parser.add_argument("--poll", type=float, default=1.0)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}, one process, loopback HTTP")
    asyncio.run(rotate(args.seconds, args.loops, args.poll))
    asyncio.run(outage(args.seconds, args.loops))


if __name__ == "__main__":
    main()
