"""The processes a chaos run owns: its broker and its API emulator.

`OwnBroker` runs `scripts/kafka` with a temporary `KAFKA_RUN` directory and free ports, so it
never meets a broker someone else started, and it stops only the broker whose pid file it wrote.
It can stop the broker and start it again on the same data. `EmulatorProcess` serves
`convoai-worker emulator` in its own process and speaks its admin API (faults, request log).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Self, TypeVar

import aiohttp
import msgspec

from devtools.local import free_port, wait_for_port
from tests.kafka import kafka_script
from tests.pipeline.harness import stop_process

API_PATH = "/api/conversational-ai-agent"

T = TypeVar("T")


async def polling(work: Awaitable[T], poll: Callable[[], Awaitable[None]]) -> T:
    """Await `work` (a member joining or leaving, the broker starting) while calling `poll`,
    which follows the outputs, so that progress is seen as it happens."""
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            await poll()
    finally:
        task.cancel()
    return task.result()


class OwnBroker:
    """A single-node broker on loopback, data in a temporary directory; on free ports unless
    `port` is given (the controller then listens on the next one)."""

    def __init__(self, port: int | None = None) -> None:
        self.run_dir = Path(tempfile.mkdtemp(prefix="chaos-kafka-"))
        self.port = port or free_port()
        self._env = {
            "KAFKA_RUN": str(self.run_dir),
            "KAFKA_BROKER_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.port + 1 if port else free_port()),
        }
        self.bootstrap = f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        try:
            await self._script("up")
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._script("down")  # only the broker of this pid file
        shutil.rmtree(self.run_dir, ignore_errors=True)

    async def stop(self) -> None:
        """Stop the broker (SIGTERM by its pid file); its data stays."""
        await self._script("stop")

    async def start(self) -> None:
        """Start the broker again on the same data and wait until it serves requests."""
        await self._script("start")
        await self._script("wait")

    async def _script(self, action: str) -> None:
        await asyncio.to_thread(kafka_script, action, self._env)


class EmulatorProcess:
    """`convoai-worker emulator` in its own process, with its admin API."""

    def __init__(self, env: dict[str, str], log: Path, request_log_size: int) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.api_url = self.origin + API_PATH
        # the scenarios stall workers for up to a minute on purpose while the agents' users
        # stay in their channels: no agent leaves for want of requests
        args = ["--port", str(self.port), "--max-agents", "10000000", "--no-idle-exit"]
        args += ["--request-log-size", str(request_log_size)]
        self.request_log_size = request_log_size
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "worker", "emulator", *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        try:
            await asyncio.to_thread(wait_for_port, self.port, self.process, "the emulator")
        except BaseException:
            await self.__aexit__()
            raise
        self._session = aiohttp.ClientSession(self.origin)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()
        await stop_process(self.process)

    async def _admin(self, method: str, path: str, body: Any = None) -> Any:
        assert self._session is not None  # noqa: S101 - used inside the block only
        async with self._session.request(method, f"/_emulator/{path}", json=body) as response:
            response.raise_for_status()
            return msgspec.json.decode(await response.read())

    async def reset(self) -> None:
        """Forget agents, numbers, faults and the request log."""
        await self._admin("POST", "reset")

    async def faults(self, settings: dict[str, Any]) -> None:
        """Put fault settings in force (`FaultSettings` as JSON)."""
        await self._admin("PUT", "faults", settings)

    async def request_log(self) -> list[dict[str, Any]]:
        """Every request the emulator logged since its reset, oldest first (`LoggedRequest`
        as JSON: operation, path, body, status, timestamp). Fails when the ring buffer has
        dropped requests."""
        answer = await self._admin("GET", "requests")
        total, kept = answer["total"], self.request_log_size
        if total > kept:
            raise RuntimeError(f"the emulator logged {total} requests but keeps only {kept}")
        requests: list[dict[str, Any]] = answer["requests"]
        return requests
