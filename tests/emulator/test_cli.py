"""`convoai-worker emulator` as a process: port discovery, flags, credentials, clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiohttp

from tests.emulator.harness import basic_auth


async def spawn(
    *flags: str, env: dict[str, str] | None = None
) -> tuple[asyncio.subprocess.Process, str]:
    """Start the emulator on an ephemeral port; return the process and its origin URL."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CONVOAI_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker",
        "emulator",
        "--port",
        "0",
        *flags,
        stdout=asyncio.subprocess.PIPE,
        env=clean | (env or {}),
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode()
    assert line.startswith("emulator listening on http://127.0.0.1:"), line
    return process, line.split()[-1]


async def stop(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), timeout=30)


async def test_flags_configure_faults_and_sigterm_stops_cleanly() -> None:
    """`--error-rate 503=1 --retry-after 2` answers every request 503 with Retry-After."""
    process, origin = await spawn("--error-rate", "503=1", "--retry-after", "2")
    try:
        async with aiohttp.ClientSession() as session:
            url = f"{origin}/api/conversational-ai-agent/v2/phone-numbers"
            async with session.get(url) as response:
                assert (response.status, response.headers["Retry-After"]) == (503, "2")
            async with session.get(f"{origin}/_emulator/faults") as response:
                rules = (await response.json())["rules"]
                assert [(r["status"], r["rate"]) for r in rules] == [(503, 1.0)]
    finally:
        assert await stop(process) == 0


async def test_credentials_come_from_the_environment() -> None:
    """CONVOAI_CUSTOMER_ID/SECRET are required when set; `--fault` adds a rule."""
    env = {"CONVOAI_CUSTOMER_ID": "id", "CONVOAI_CUSTOMER_SECRET": "s"}
    process, origin = await spawn("--fault", '{"operation":"number.get","status":500}', env=env)
    try:
        async with aiohttp.ClientSession() as session:
            url = f"{origin}/api/conversational-ai-agent/v2/phone-numbers"
            async with session.get(url) as response:
                assert response.status == 401
            headers = {"Authorization": basic_auth("id", "s")}
            async with session.get(url, headers=headers) as response:
                assert response.status == 200
            async with session.get(f"{url}/+15550001111", headers=headers) as response:
                assert response.status == 500
    finally:
        assert await stop(process) == 0
