"""`convoai-worker emulator` as a process: port discovery, flags, credentials, clean stop."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

import aiohttp
import msgspec

from tests.emulator.harness import LLM, TTS, basic_auth
from worker.commands.emulator import configure, rules
from worker.emulator.rules import Rules

SIGNED = {"Authorization": basic_auth("anyone", "any-secret")}  # well-formed, as required


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
        async with aiohttp.ClientSession(headers=SIGNED) as session:
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


API = "/api/conversational-ai-agent/v2"
PROPERTIES: dict[str, Any] = {
    "channel": "room-1",
    "token": "t",
    "agent_rtc_uid": "1",
    "remote_rtc_uids": ["2"],
    "llm": LLM,
    "tts": TTS,
}
JOIN = {"name": "bot", "properties": PROPERTIES}


async def test_a_burst_of_429_then_latency() -> None:
    """`--burst-429 2 --retry-after 3`: the first two requests get 429 with Retry-After 3, the
    third is served, `--latency-ms 300` late."""
    process, origin = await spawn("--burst-429", "2", "--retry-after", "3", "--latency-ms", "300")
    try:
        async with aiohttp.ClientSession(headers=SIGNED) as session:
            url = f"{origin}{API}/phone-numbers"
            for _ in range(2):
                async with session.get(url) as response:
                    assert (response.status, response.headers.get("Retry-After")) == (429, "3")
            started = asyncio.get_running_loop().time()
            async with session.get(url) as response:
                assert response.status == 200
            assert asyncio.get_running_loop().time() - started >= 0.3
    finally:
        assert await stop(process) == 0


async def test_dropped_and_slow_requests() -> None:
    """`--drop-rate 1` closes every connection at once without an answer; `--slow-rate 1
    --slow-ms 400` answers every request 400 ms late."""
    process, origin = await spawn("--drop-rate", "1")
    try:
        async with aiohttp.ClientSession(headers=SIGNED) as session:
            started = asyncio.get_running_loop().time()
            try:
                async with session.get(f"{origin}{API}/phone-numbers") as response:
                    raise AssertionError(f"answered {response.status}")
            except aiohttp.ServerDisconnectedError:
                pass
            assert asyncio.get_running_loop().time() - started < 2
    finally:
        assert await stop(process) == 0
    process, origin = await spawn("--slow-rate", "1", "--slow-ms", "400")
    try:
        async with aiohttp.ClientSession(headers=SIGNED) as session:
            started = asyncio.get_running_loop().time()
            async with session.get(f"{origin}{API}/phone-numbers") as response:
                assert response.status == 200
            assert asyncio.get_running_loop().time() - started >= 0.4
    finally:
        assert await stop(process) == 0


async def test_agent_limits_and_delays() -> None:
    """`--max-agents 1` refuses a second agent with 422; `--start-delay` keeps a new agent
    STARTING, `--stop-delay` a stopped one STOPPING, for that long."""
    process, origin = await spawn(
        "--max-agents", "1", "--start-delay", "0.5", "--stop-delay", "1.6"
    )
    project = f"{origin}{API}/projects/app"
    try:
        async with aiohttp.ClientSession(headers=SIGNED) as session:

            async def status(agent_id: str) -> str:
                async with session.get(f"{project}/agents/{agent_id}") as response:
                    return str((await response.json())["status"])

            async def seconds_until(agent_id: str, wanted: str) -> float:
                started = loop.time()
                while (found := await status(agent_id)) != wanted:
                    assert loop.time() - started < 10, found
                    await asyncio.sleep(0.02)
                return loop.time() - started

            loop = asyncio.get_running_loop()
            async with session.post(f"{project}/join", json=JOIN) as response:
                agent_id = (await response.json())["agent_id"]
            assert await status(agent_id) == "STARTING"
            async with session.post(f"{project}/join", json={**JOIN, "name": "two"}) as response:
                assert response.status == 422
            assert await seconds_until(agent_id, "RUNNING") > 0.3
            async with session.post(f"{project}/agents/{agent_id}/leave") as response:
                assert response.status == 200
            assert await status(agent_id) == "STOPPING"
            assert await seconds_until(agent_id, "STOPPED") > 1.3  # the default is 1 s
    finally:
        assert await stop(process) == 0


async def test_strictness_is_the_default_and_flags_switch_it_off() -> None:
    """By default an unsigned join is 401 and a signed one without an LLM 400;
    `--no-auth-required --no-join-validation` accept both."""
    properties = {k: v for k, v in PROPERTIES.items() if k != "llm"}
    for flags, expected in (
        ((), (401, 400)),
        (("--no-auth-required", "--no-join-validation"), (200, 200)),
    ):
        process, origin = await spawn(*flags)
        try:
            async with aiohttp.ClientSession() as session:
                url = f"{origin}{API}/projects/app/join"
                body = {"name": "unsigned", "properties": properties}
                async with session.post(url, json=body) as unsigned:
                    pass
                body = {"name": "signed", "properties": properties}
                async with session.post(url, json=body, headers=SIGNED) as signed:
                    pass
            assert (unsigned.status, signed.status) == expected
        finally:
            assert await stop(process) == 0


def test_strictness_flags_build_the_rules() -> None:
    """`--kind` starts from the forgiving rules; value flags apply on top of either base."""
    parser = argparse.ArgumentParser()
    configure(parser)
    kind = rules(parser.parse_args(["--kind", "--ring-seconds", "2", "--busy-number", "+15550001"]))
    assert kind == msgspec.structs.replace(
        Rules.kind(), ring_seconds=2.0, busy_numbers=frozenset({"+15550001"})
    )
    flags = "--name-reuse never --no-name-in-get --agent-failure-rate 0.5 --no-idle-exit"
    flags += " --unanswered-number +15550002 --no-answer-seconds 9"
    strict = rules(parser.parse_args(flags.split()))
    assert strict == Rules(
        name_reuse="never",
        name_in_get=False,
        agent_failure_rate=0.5,
        unanswered_numbers=frozenset({"+15550002"}),
        no_answer_seconds=9.0,
        idle_exit=False,
    )
    assert rules(parser.parse_args([])) == Rules()
