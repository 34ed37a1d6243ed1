"""`convoai-worker run` as a process on the real broker: its flags, and its signals."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from devtools.local import free_port
from tests.console import clean_environment
from tests.emulator.harness import RunningEmulator, running_emulator
from tests.kafka import running_broker
from tests.pipeline.harness import (
    committed_offsets,
    make_settings,
    produce,
    read_topic,
    scrape,
    settings_env,
    stop_process,
    total,
    wait_for_results,
    wait_ready,
)
from worker.emulator.config import EmulatorConfig
from worker.emulator.faults import FaultSettings

pytestmark = pytest.mark.kafka

NOWHERE = "127.0.0.1:1"  # nothing listens on port 1


def start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`convoai-worker run ARGS` with `env`, its output appended to `log`."""
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "worker", "run", *args],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


@contextlib.asynccontextmanager
async def spawned(
    env: dict[str, str], log: Path, *args: str
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """The worker process for the block; killed at its end if still running."""
    process = start(env, log, *args)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def committed(bootstrap: str, group: str, topic: str) -> int:
    """Records of `topic` the group committed, over all partitions."""
    return sum((await committed_offsets(bootstrap, group, topic)).values())


async def readyz(port: int) -> int | None:
    """The status of /readyz, None when nothing answers."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/readyz") as response,
        ):
            return response.status
    except aiohttp.ClientError:
        return None


async def test_run_flags_win_over_the_environment(
    kafka_bootstrap: str, topics: dict[str, str], emulator: RunningEmulator, tmp_path: Path
) -> None:
    """`--bootstrap`, `--group`, `--http-port` and `--api-base-url` replace the values of their
    variables: the worker reaches Kafka and the API only through the flags' values."""
    settings = make_settings(kafka_bootstrap, topics, emulator.api_url)
    group, port = f"flag-{settings.group_id}", free_port()
    env = settings_env(settings) | {
        "CONVOAI_KAFKA_BOOTSTRAP": NOWHERE,
        "CONVOAI_API_BASE_URL": f"http://{NOWHERE}/api/conversational-ai-agent",
    }
    flags = ["--bootstrap", kafka_bootstrap, "--group", group, "--http-port", str(port)]
    flags += ["--api-base-url", emulator.api_url]
    await produce(kafka_bootstrap, topics["commands"], [{"command": "agent.list", "id": "flags"}])
    log = tmp_path / "worker.log"
    async with spawned(env, log, *flags) as worker:
        await wait_ready(port)
        [result] = await wait_for_results(kafka_bootstrap, topics["results"], {"flags"})
        assert await stop_process(worker) == 0, log.read_text()[-3000:]
    assert result.outcome == "succeeded"
    assert len(emulator.requests("agent.list")) == 1
    assert await committed(kafka_bootstrap, group, topics["commands"]) == 1
    assert await committed(kafka_bootstrap, settings.group_id, topics["commands"]) == 0


async def test_sigterm_turns_readiness_off_and_a_second_signal_exits_at_once(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    """After SIGTERM /readyz answers 503 while running commands drain; a second SIGTERM ends the
    process at once (exit 1), publishing no result for what was still running."""
    hung = EmulatorConfig(faults=FaultSettings(latency_ms=60_000))
    async with running_emulator(hung) as emulator:
        settings = make_settings(
            kafka_bootstrap,
            topics,
            emulator.api_url,
            drain_grace_seconds=120.0,
            api_timeout_seconds=120.0,
        )
        commands = [  # four keys: four commands at the API at once
            {"command": "agent.get", "id": f"hung-{i}", "agent_id": f"A{i}"} for i in range(4)
        ]
        await produce(kafka_bootstrap, topics["commands"], commands)
        log = tmp_path / "worker.log"
        async with spawned(settings_env(settings), log) as worker:
            await wait_ready(settings.http_port)
            deadline = time.monotonic() + 30
            while total(await scrape(settings.http_port), "convoai_commands_in_flight") < 4:
                assert time.monotonic() < deadline, "the commands never reached the API"
                await asyncio.sleep(0.05)
            worker.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            while await readyz(settings.http_port) != 503:
                assert time.monotonic() < deadline, "still ready after SIGTERM"
                assert worker.poll() is None, "exited instead of draining"
                await asyncio.sleep(0.05)
            assert worker.poll() is None, "the drain was expected to take its grace"
            started = time.monotonic()
            code = await stop_process(worker, signal.SIGTERM)
            assert time.monotonic() - started < 5, log.read_text()[-3000:]
    assert code == 1, log.read_text()[-3000:]
    assert await read_topic(kafka_bootstrap, topics["results"]) == []
    assert await committed(kafka_bootstrap, settings.group_id, topics["commands"]) == 0


async def wait_for_line(log: Path, event: str, process: subprocess.Popen[bytes]) -> None:
    """Until the worker has logged `event` (fails if it exits first)."""
    deadline = time.monotonic() + 60
    while event not in log.read_text():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"no {event} line:\n{log.read_text()[-3000:]}"
        await asyncio.sleep(0.1)


async def test_a_worker_started_before_its_broker_serves_once_the_broker_is_up(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    """A broker restarting during a deploy: the worker waits (one line per attempt) instead of
    exiting, and serves as soon as the broker answers."""
    ports = {"broker": free_port(), "controller": free_port()}
    bootstrap = f"127.0.0.1:{ports['broker']}"
    topics = {kind: f"late.{kind}" for kind in ("commands", "results", "state", "dlq")}
    settings = make_settings(
        bootstrap,
        topics,
        emulator.api_url,
        create_topics=True,
        topic_partitions=1,
        startup_timeout_seconds=300.0,
        log_level="INFO",
    )
    log = tmp_path / "worker.log"
    async with spawned(settings_env(settings), log) as worker:
        await wait_for_line(log, "kafka_unreachable", worker)
        with running_broker(tmp_path / "kafka", ports):
            await wait_ready(settings.http_port)
            await produce(bootstrap, topics["commands"], [{"command": "agent.list", "id": "late"}])
            [result] = await wait_for_results(bootstrap, topics["results"], {"late"})
            assert await stop_process(worker) == 0, log.read_text()[-3000:]
    assert result.outcome == "succeeded"
    attempts = [line for line in log.read_text().splitlines() if "kafka_unreachable" in line]
    assert attempts, log.read_text()[-3000:]
    assert all(f"cannot connect to Kafka at {bootstrap}" in line for line in attempts)
    assert "kafka_reachable" in log.read_text()


async def test_sigterm_while_waiting_for_kafka_stops_at_once(tmp_path: Path) -> None:
    """No broker yet and a long startup timeout: SIGTERM ends the wait, exit 0."""
    env = clean_environment(
        CONVOAI_KAFKA_BOOTSTRAP=NOWHERE,
        CONVOAI_HTTP_PORT="0",
        CONVOAI_STARTUP_TIMEOUT_SECONDS="600",
        CONVOAI_API_BASE_URL="http://127.0.0.1:1/api",
        CONVOAI_LOG_FORMAT="json",
    )
    log = tmp_path / "worker.log"
    async with spawned(env, log) as worker:
        await wait_for_line(log, "kafka_unreachable", worker)
        started = time.monotonic()
        assert await stop_process(worker) == 0, log.read_text()[-3000:]
        assert time.monotonic() - started < 5
