"""Worker throughput and CPU per command, against a bare aiohttp client, in one run.

Setup (printed with the figures): a local broker (`scripts/kafka up`), the emulator in its own
process, the worker (`convoai-worker run`, uvloop) in its own process on fresh topics with
12 partitions, and this script producing the backlog and reading the results.

1. Throughput at API latency L (default 100 ms): N `agent.speak` commands addressed by name
   over K agents (started first), produced as a backlog before the worker starts; commands/s is
   measured from the first to the last result on the results topic.
2. CPU per command at 0 ms latency: the worker process's user+system CPU seconds (from
   /proc/PID/stat) spent on N more speak commands, divided by N.
3. Baseline in the same run: a separate process sends the same speak requests with a bare
   aiohttp `ClientSession.post` (concurrency 64, uvloop) to the same emulator; its CPU per
   request is measured the same way. The ratio (2)/(3) is the worker's whole per-command cost
   (decode, schedule, HTTP call, produce, commit) relative to the HTTP call alone.

Usage: uv run python bench/bench_pipeline.py [--commands 20000] [--agents 1000] [--latency-ms 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from contracts.keys import ordering_key
from devtools.local import free_port, wait_for_port
from devtools.measure import cpu_seconds

BOOTSTRAP = os.environ.get("CONVOAI_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
PARTITIONS = 12
APP = "bench-app"


def topic_configs(name: str) -> dict[str, str]:
    """State topics are compacted; results carry the broker's append time (their publish time)."""
    if "state" in name:
        return {"cleanup.policy": "compact"}
    if "results" in name:
        return {"message.timestamp.type": "LogAppendTime"}
    return {}


async def create_topics(names: list[str], *, delete: bool = False) -> None:
    """Create the topics with `PARTITIONS` partitions (or delete them)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        if delete:
            await admin.delete_topics(names)
        else:
            await admin.create_topics(
                [NewTopic(n, PARTITIONS, 1, topic_configs=topic_configs(n)) for n in names]
            )
    finally:
        await admin.close()


async def produce_keyed(topic: str, commands: list[dict[str, Any]]) -> None:
    """Produce a backlog keyed by the ordering rules."""
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=10)
    await producer.start()
    try:
        acks = [
            await producer.send(topic, msgspec.json.encode(c), key=str(ordering_key(c)).encode())
            for c in commands
        ]
        await asyncio.gather(*acks)
    finally:
        await producer.stop()


class ResultCounter:
    """Follows the results topic from its current end and counts results."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
        self.agent_ids: list[str] = []

    async def start(self) -> None:
        await self.consumer.start()
        tps = [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)

    async def count(self, n: int, within: float) -> tuple[float, float, dict[str, int]]:
        """Wait for n results; return (first, last) arrival times and outcome counts.

        Agent ids of the results are collected in `self.agent_ids`.
        """
        decoder = msgspec.json.Decoder(dict[str, Any])
        first = last = 0.0
        outcomes: dict[str, int] = {}
        seen = 0
        deadline = time.monotonic() + within
        while seen < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {seen}/{n} results within {within:.0f} s: {outcomes}")
            batch = await self.consumer.getmany(timeout_ms=500, max_records=10_000)
            now = time.monotonic()
            for records in batch.values():
                for record in records:
                    result = decoder.decode(record.value)
                    outcome = result["outcome"]
                    if result.get("agent_id"):
                        self.agent_ids.append(result["agent_id"])
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1
                    seen += 1
                    first = first or now
                    last = now
        return first, last, outcomes

    async def stop(self) -> None:
        await self.consumer.stop()


def speaks(names: list[str], n: int, tag: str) -> list[dict[str, Any]]:
    return [
        {
            "command": "agent.speak",
            "id": f"{tag}-{i}",
            "name": names[i % len(names)],
            "text": f"utterance {i}",
        }
        for i in range(n)
    ]


BASELINE = r"""
import asyncio, json, os, resource, sys, time
import aiohttp, uvloop
url, n, conc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
names = json.loads(sys.stdin.read())
async def main():
    conn = aiohttp.TCPConnector(limit=conc)
    async with aiohttp.ClientSession(connector=conn) as s:
        sem = asyncio.Semaphore(conc)
        async def one(i):
            async with sem:
                body = json.dumps({"text": f"utterance {i}"}).encode()
                path = f"/v2/projects/bench-app/agents/{names[i % len(names)]}/speak"
                headers = {"content-type": "application/json", "Authorization": "Basic eDp5"}
                async with s.post(url + path, data=body, headers=headers) as r:
                    await r.read()
                    assert r.status == 200, r.status
        await asyncio.gather(*(one(i) for i in range(50)))  # warm-up: connections, caches
        u0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        t1 = time.perf_counter()
        u1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (u1.ru_utime - u0.ru_utime) + (u1.ru_stime - u0.ru_stime)
    print(json.dumps({"cpu": cpu, "seconds": t1 - t0}))
uvloop.run(main())
"""


def worker_env(
    run: str, base: str, topics: dict[str, str], worker_port: int, agents: int
) -> dict[str, str]:
    """The worker's environment: fresh topics and group, quiet logs."""
    return {
        **os.environ,
        "CONVOAI_API_BASE_URL": f"{base}/api/conversational-ai-agent",
        "CONVOAI_APP_ID": APP,
        "CONVOAI_KAFKA_BOOTSTRAP": BOOTSTRAP,
        "CONVOAI_GROUP_ID": f"bench-{run}",
        "CONVOAI_HTTP_PORT": str(worker_port),
        "CONVOAI_CREATE_TOPICS": "false",
        "CONVOAI_LOG_LEVEL": "WARNING",
        "CONVOAI_LOG_FORMAT": "json",
        "CONVOAI_TOPIC_COMMANDS": topics["commands"],
        "CONVOAI_TOPIC_RESULTS": topics["results"],
        "CONVOAI_TOPIC_STATE": topics["state"],
        "CONVOAI_TOPIC_DLQ": topics["dlq"],
        "CONVOAI_MAX_IN_FLIGHT": str(max(1000, agents)),
    }


async def set_latency(base: str, ms: float) -> None:
    """Change the emulator's response latency at run time."""
    async with (
        aiohttp.ClientSession() as session,
        session.put(f"{base}/_emulator/faults", json={"latency_ms": ms}) as response,
    ):
        response.raise_for_status()


async def bare_baseline(base: str, ids: list[str], n: int) -> dict[str, float]:
    """CPU and time of n bare aiohttp POSTs from a separate process."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        BASELINE,
        f"{base}/api/conversational-ai-agent",
        str(n),
        "64",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate(msgspec.json.encode(ids))
    if process.returncode != 0:
        raise SystemExit("baseline client failed")
    figures: dict[str, float] = msgspec.json.decode(out)
    return figures


class Processes:
    """The emulator and worker processes of one benchmark run."""

    def __init__(
        self, env: dict[str, str], emulator_port: int, worker_port: int, agents: int
    ) -> None:
        self.env, self.emulator_port, self.worker_port = env, emulator_port, worker_port
        self.logs = Path(tempfile.mkdtemp(prefix="bench-"))
        self.cli = [sys.executable, "-m", "worker"]
        self.emulator = self._spawn(
            [
                "emulator",
                "--port",
                str(emulator_port),
                "--max-agents",
                str(agents * 2),
                "--request-log-size",
                "1000",
                "--kind",  # throughput, not strictness: bare joins, no credentials
            ],
            "emulator",
        )
        self.worker: subprocess.Popen[bytes] | None = None

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("wb") as log:
            return subprocess.Popen([*self.cli, *args], env=self.env, stdout=log, stderr=log)

    def start_worker(self) -> int:
        self.worker = self._spawn(["run"], "worker")
        wait_for_port(self.worker_port, self.worker, "the worker")
        return self.worker.pid

    def stop(self) -> None:
        for process in (self.worker, self.emulator):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
        print(f"logs: {self.logs}")


async def bench(args: argparse.Namespace) -> None:
    run = uuid.uuid4().hex[:8]
    topics = {k: f"bench.{run}.{k}" for k in ("commands", "results", "state", "dlq")}
    await create_topics(list(topics.values()))
    emulator_port, worker_port = free_port(), free_port()
    base = f"http://127.0.0.1:{emulator_port}"
    processes = Processes(
        worker_env(run, base, topics, worker_port, args.agents),
        emulator_port,
        worker_port,
        args.agents,
    )
    try:
        wait_for_port(emulator_port, processes.emulator, "the emulator")
        names = [f"bench-{run}-{i}" for i in range(args.agents)]
        starts = [
            {
                "command": "agent.start",
                "id": f"start-{i}",
                "name": n,
                "properties": {
                    "channel": n,
                    "token": "t",
                    "agent_rtc_uid": "1",
                    "remote_rtc_uids": ["2"],
                },
            }
            for i, n in enumerate(names)
        ]
        await produce_keyed(topics["commands"], starts)
        counter = ResultCounter(topics["results"])
        await counter.start()
        pid = processes.start_worker()
        _, _, outcomes = await counter.count(len(starts), 120)
        ids = list(counter.agent_ids)
        print(f"setup: {len(starts)} agents started: {outcomes}")

        # 1. throughput at the given API latency, backlog produced while the worker waits
        await set_latency(base, args.latency_ms)
        await produce_keyed(topics["commands"], speaks(names, args.commands, "tp"))
        first, last, outcomes = await counter.count(args.commands, 600)

        # 2. worker CPU per command at 0 ms latency
        await set_latency(base, 0)
        await produce_keyed(topics["commands"], speaks(names, 500, "warm"))
        await counter.count(500, 120)
        await produce_keyed(topics["commands"], speaks(names, args.commands, "cpu"))
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        _, _, cpu_outcomes = await counter.count(args.commands, 600)
        cpu1, t1 = cpu_seconds(pid), time.monotonic()

        # 3. bare aiohttp baseline against the same emulator, same agents, same body size
        bare = await bare_baseline(base, ids, args.commands)
        await counter.stop()
    finally:
        processes.stop()
    worker_cpu = (cpu1 - cpu0) / args.commands
    bare_cpu = bare["cpu"] / args.commands
    n = args.commands
    print(
        f"python {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}; "
        f"broker {BOOTSTRAP}; {PARTITIONS} partitions; {args.agents} keys (agents)"
    )
    print(
        f"1. throughput at {args.latency_ms:.0f} ms API latency: {n} commands in "
        f"{last - first:.2f} s = {n / (last - first):,.0f} commands/s  {outcomes}"
    )
    print(
        f"2. worker CPU per command at 0 ms: {worker_cpu * 1e6:,.0f} µs "
        f"({n} in {t1 - t0:.2f} s = {n / (t1 - t0):,.0f}/s)  {cpu_outcomes}"
    )
    print(
        f"3. bare aiohttp POST CPU per request: {bare_cpu * 1e6:,.0f} µs "
        f"({n} requests in {bare['seconds']:.2f} s)"
    )
    print(f"   ratio worker/bare = {worker_cpu / bare_cpu:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--agents", type=int, default=1_000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
