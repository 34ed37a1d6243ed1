"""The JVM peer of `make bench` (bench/parallel-consumer) does what the Python peers do: for the
same commands the same POST (method, path, Authorization, JSON body, no chunking) reaches the API,
and the same result record (key and content) reaches the results topic, on the real broker.

Its jar is built by Maven once (about 30 s with Maven's cache warm, longer when Maven first
downloads the dependencies) and cached outside the work tree by bench/jvm.py, so later sessions
and `make bench` reuse it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench import jvm
from bench.fake_api import BODY
from contracts.keys import ordering_key
from devtools.workload import speaks
from tests import kafka

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

COMMANDS = 6
PARTITIONS = 3
DEADLINE = 90.0  # a peer starts, joins its group and answers every command within this


class Request(NamedTuple):
    method: str
    path: str
    authorization: str | None
    content_type: str
    chunked: bool
    body: Any


class Recording:
    """An API that answers every request like bench/fake_api.py and records it."""

    def __init__(self) -> None:
        self.requests: list[Request] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            Request(
                request.method,
                request.path_qs,
                request.headers.get("Authorization"),
                request.content_type,
                "chunked" in request.headers.get("Transfer-Encoding", ""),
                msgspec.json.decode(await request.read()),
            )
        )
        return web.Response(body=BODY, content_type="application/json")


@pytest.fixture(scope="session")
def peer_jar() -> Path:
    """Built once per session at most (Java and Maven are prerequisites, as for the broker)."""
    why = jvm.missing()
    if why is not None:
        pytest.fail(f"the JVM peer {why}")
    return jvm.build()


@pytest.fixture
async def api() -> AsyncIterator[tuple[Recording, str]]:
    recording = Recording()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recording.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield recording, f"http://127.0.0.1:{port}/api/conversational-ai-agent"
    finally:
        await runner.cleanup()


async def produce(bootstrap: str, topic: str, commands: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for command in commands:
            key = str(ordering_key(command)).encode()
            await producer.send(topic, msgspec.json.encode(command), key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def results(bootstrap: str, topic: str, count: int, deadline: float) -> dict[str, Any]:
    """Command id → (key, decoded value) of the first `count` result records."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: dict[str, Any] = {}
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        while len(found) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    value = msgspec.json.decode(record.value)
                    found[value["command_id"]] = (record.key, value)
    finally:
        await consumer.stop()
    return found


async def run_peer(argv: list[str], bootstrap: str, commands: str, log: Path) -> dict[str, Any]:
    """Run a peer on the commands topic until it published all results; returns them."""
    topic = kafka.unique_name("results")
    await kafka.create_topics(bootstrap, [topic], partitions=PARTITIONS)
    argv = [*argv, "--commands", commands, "--results", topic]
    argv += ["--group", kafka.unique_name("group")]
    env = {**os.environ, "CONVOAI_KAFKA_BOOTSTRAP": bootstrap}
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(*argv, env=env, stdout=out, stderr=out)
    try:
        found = await results(bootstrap, topic, COMMANDS, time.monotonic() + DEADLINE)
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        await kafka.delete_topics(bootstrap, [topic])
    assert len(found) == COMMANDS, f"{argv[:4]}: {len(found)} results\n{log.read_text()[-3000:]}"
    return found


@pytest.mark.timeout(900)  # the first build downloads and compiles
async def test_the_jvm_peer_sends_and_publishes_what_the_python_peers_do(
    kafka_bootstrap: str,
    peer_jar: Path,
    api: tuple[Recording, str],
    tmp_path: Path,
) -> None:
    recording, base = api
    commands = kafka.unique_name("commands")
    await kafka.create_topics(kafka_bootstrap, [commands], partitions=PARTITIONS)
    await produce(kafka_bootstrap, commands, speaks("peer", COMMANDS, 3))

    python = [sys.executable, "-m", "bench.peers", "aiokafka-gather", "--api", base]
    python_results = await run_peer(python, kafka_bootstrap, commands, tmp_path / "python.log")
    python_requests, recording.requests = recording.requests, []
    java = [*jvm.command(peer_jar), "--api", base]
    java_results = await run_peer(java, kafka_bootstrap, commands, tmp_path / "java.log")
    await kafka.delete_topics(kafka_bootstrap, [commands])

    def by_text(requests: list[Request]) -> dict[str, Request]:
        return {r.body["text"]: r for r in requests}

    assert len(python_requests) == COMMANDS
    assert by_text(recording.requests) == by_text(python_requests)
    assert len(recording.requests) == COMMANDS
    assert java_results == python_results
