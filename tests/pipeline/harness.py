"""Building blocks for tests of the whole worker on the real broker and the emulator over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import aiohttp
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from contracts import ResultEvent, decode_result
from contracts.keys import ordering_key
from devtools.local import free_port
from worker.app import Worker
from worker.emulator.config import EmulatorConfig
from worker.emulator.rules import Rules
from worker.kafka.aio import all_partitions
from worker.metrics import Metrics
from worker.settings import Settings

APP_ID = "test-app"


# Whole-worker tests start many agents and keep some of them for minutes between the commands
# of their key (the worker stopped, a group rebalancing): idle exits are off, the rest strict.
OPEN_EMULATOR = EmulatorConfig(max_agents_per_app=100_000, rules=Rules(idle_exit=False))


def make_settings(
    bootstrap: str, topics: Mapping[str, str], api_base_url: str, **overrides: Any
) -> Settings:
    """Worker settings for a test: its own topics and group, fast retries, loopback only."""
    values: dict[str, Any] = {
        "kafka_bootstrap": bootstrap,
        "api_base_url": api_base_url,
        "customer_id": "pipeline-tests",  # any well-formed credentials pass the emulator
        "customer_secret": "pipeline-tests-secret",
        "app_id": APP_ID,
        "group_id": f"group-{topics['commands']}",
        "topic_commands": topics["commands"],
        "topic_results": topics["results"],
        "topic_state": topics["state"],
        "topic_dlq": topics["dlq"],
        "create_topics": False,
        "http_host": "127.0.0.1",
        "http_port": free_port(),
        "api_backoff_base_seconds": 0.01,
        "api_backoff_max_seconds": 0.05,
        "api_quota_backoff_seconds": 0.05,
        "drain_grace_seconds": 10.0,
        "log_format": "json",
        "log_level": "WARNING",
    }
    values.update(overrides)
    return msgspec.convert(values, Settings)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes `convoai-worker run` load exactly `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVOAI_")}
    for name, value in msgspec.structs.asdict(settings).items():
        env[f"CONVOAI_{name.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    return env


@contextlib.asynccontextmanager
async def in_process_worker(settings: Settings) -> AsyncIterator[Worker]:
    """Run a worker on the test's event loop; stop it gracefully at the end of the block."""
    worker = Worker(settings, Metrics(CollectorRegistry()))
    task = asyncio.create_task(worker.run())
    try:
        await wait_ready(settings.http_port, task)
        yield worker
    finally:
        worker.request_stop()
        await asyncio.wait_for(task, timeout=settings.drain_grace_seconds + 20)


async def wait_ready(port: int, task: asyncio.Task[None] | None = None) -> None:
    """Wait until the worker's /readyz answers 200 (or its task died)."""
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if task is not None and task.done():
                task.result()
                raise AssertionError("worker stopped during startup")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise AssertionError("worker not ready within 60 s")


def spawn_worker(settings: Settings, log_path: str) -> subprocess.Popen[bytes]:
    """Start `convoai-worker run` as a separate process (so it can be killed)."""
    with open(log_path, "ab") as log:  # noqa: PTH123 - handed to the child, closed here
        return subprocess.Popen(
            [sys.executable, "-m", "worker", "run"],
            env=settings_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    """Send `sig` and wait for the exit code (SIGKILL after 60 s) without blocking the loop."""
    if process.poll() is None:
        process.send_signal(sig)
    for _ in range(600):
        code = process.poll()
        if code is not None:
            return code
        await asyncio.sleep(0.1)
    process.kill()
    return process.wait()


Record = tuple[bytes | None, bytes | None]
"""A raw record as (key, value); either may be null."""


async def produce(
    bootstrap: str,
    topic: str,
    commands: Iterable[Mapping[str, Any] | bytes | Record],
    *,
    rate: float | None = None,
    **producer_options: Any,
) -> list[tuple[int, int]]:
    """Produce commands (objects keyed by the ordering rules, raw bytes without key, or raw
    `(key, value)` records), at `rate` records per second (None: as fast as possible);
    `producer_options` go to the producer (e.g. `max_request_size`).
    Returns where each record landed, `(partition, offset)`, in order."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, **producer_options
    )
    await producer.start()
    try:
        acks = []
        started = time.monotonic()
        for n, command in enumerate(commands):
            value: bytes | None
            key: bytes | None
            if isinstance(command, bytes):
                value, key = command, None
            elif isinstance(command, tuple):
                key, value = command
            else:
                value = msgspec.json.encode(command)
                found = ordering_key(command)
                key = found.encode() if found else None
            if rate is not None and (early := started + n / rate - time.monotonic()) > 0:
                await asyncio.sleep(early)
            acks.append(await producer.send(topic, value=value, key=key))
        return [(sent.partition, sent.offset) for sent in await asyncio.gather(*acks)]
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record currently on `topic` (all partitions), in offset order per partition."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps = await all_partitions(consumer)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        records: list[Any] = []
        while any([await consumer.position(tp) < end[tp] for tp in tps]):
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(
                    r for r in batch if r.offset < end[TopicPartition(r.topic, r.partition)]
                )
        return records
    finally:
        await consumer.stop()


async def wait_for_results(
    bootstrap: str, topic: str, command_ids: set[str], within: float = 60.0
) -> list[ResultEvent]:
    """Poll the results topic until every id in `command_ids` has a result; return all results."""
    deadline = time.monotonic() + within
    while True:
        results = [decode_result(r.value) for r in await read_topic(bootstrap, topic)]
        missing = command_ids - {r.command_id for r in results}
        if not missing:
            return results
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(missing)} command(s) without result, e.g. {sorted(missing)[:5]}"
            )
        await asyncio.sleep(0.5)


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition of `topic` (0 where none)."""
    tps = [TopicPartition(topic, p) for p in sorted(await end_offsets(bootstrap, topic))]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {tp.partition: (await consumer.committed(tp)) or 0 for tp in tps}
    finally:
        await consumer.stop()


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The end offset of every partition of `topic`."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps = await all_partitions(consumer)
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, keyed by name and sorted labels."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """Sum of a metric's samples whose labels include `labels`."""
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )
