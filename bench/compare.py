"""convoai-worker side by side with what a user would write by hand, in one run.

Setup (printed with the figures): the local broker, one fake API (`bench/fake_api.py`, fixed
latency, own process) and each system in its own process, on fresh topics of 12 partitions and
a fresh consumer group. Systems: convoai-worker (`convoai-worker run`), the same with tracing
on (`CONVOAI_TRACING=true`, spans made but not exported: what tracing itself costs), the same as
two processes (`CONVOAI_PROCESSES=2`: a parent and two group members; CPU and RSS of all three),
the peers of `bench/peers.py` and Confluent Parallel Consumer on the JVM (`bench/parallel-consumer`,
built once by `bench/jvm.py`; without Java 17+ and Maven its row says so). For each Kafka system:

1. Backlog at 100 ms, then at 0 ms API latency: W warm-up commands wait on the topic when the
   system starts (start → first result, and for the worker start → /readyz); once they are done
   (or 2 s after the first result; with `--processes 2` also every process has partitions), N
   more `agent.speak` commands by agent id over K keys are produced at once. Commands/s and CPU
   per command (the user+system time of the process and its descendants, from /proc) cover
   exactly those N, fetching included, up to a time cap for systems too slow to finish; peak
   RSS (VmHWM, summed over the processes) with that backlog.
2. Paced at half of (1)'s commands/s at 100 ms: added latency per command = the result's publish
   time (LogAppendTime of the results topic) minus the time the fake API answered, p50 / p99.

Bare aiohttp sends the same POSTs without Kafka, and reports its own CPU the same way. Then the
worker runs the 0 ms backlog again under py-spy (flame graph, CPU per command by function).

Usage: python -m bench.compare [--quick] [--systems worker,aiokafka-gather,…] [--no-profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench import jvm, report
from bench.bench_pipeline import BOOTSTRAP, PARTITIONS, create_topics, produce_keyed, worker_env
from contracts.keys import ordering_key
from devtools.local import free_port, wait_for_port
from devtools.measure import (
    cpu_seconds,
    family_cpu_seconds,
    family_peak_rss_mib,
    machine_busy_seconds,
)
from devtools.workload import speaks

WORKER = "convoai-worker"
TRACED = "convoai-worker-traced"  # tracing on, spans kept but not exported: its CPU cost
PROCESSES = report.PROCESSES  # `run --processes 2`: one pod's two cores
WORKERS = {
    WORKER: {},
    TRACED: {"CONVOAI_TRACING": "true", "OTEL_TRACES_EXPORTER": "none"},
    PROCESSES: {"CONVOAI_PROCESSES": "2"},
}
JVM_PEER = "parallel-consumer"  # bench/parallel-consumer: its own process, a JVM
KAFKA_SYSTEMS = (
    WORKER,
    TRACED,
    PROCESSES,
    "faststream",
    "faststream-concurrent",
    "aiokafka-sequential",
    "aiokafka-gather",
    JVM_PEER,
)
SYSTEMS = (*KAFKA_SYSTEMS, "aiohttp")
LATENCIES = (100.0, 0.0)
FIRST_RESULT_SECONDS = 60.0  # a system that publishes nothing within this failed
WARMUP_SECONDS = 2.0
PROFILE_RATE = 200  # py-spy samples per second
PACE_TICK = 0.005  # the paced phase produces the commands due every 5 ms together
SPY_ATTACH_SECONDS = 0.5
RESULTS = Path(__file__).parent / "results"


class Plan(NamedTuple):
    """The size of a run."""

    commands: int
    keys: int
    warmup: int
    cap_seconds: dict[float, float]  # per API latency: measuring stops after this
    paced_seconds: float


FULL = Plan(20_000, 1_000, 1_000, {100.0: 25.0, 0.0: 40.0}, 10.0)
QUICK = Plan(4_000, 1_000, 400, {100.0: 5.0, 0.0: 6.0}, 3.0)


class Result(msgspec.Struct):
    command_id: str
    outcome: str


class Follower:
    """Reads a results topic from its start: command id → publish time (ms), outcomes."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
        self.published: dict[str, int] = {}
        self.outcomes: dict[str, int] = {}
        self._decode = msgspec.json.Decoder(Result).decode

    async def __aenter__(self) -> Follower:
        await self.consumer.start()
        tps = [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_beginning(*tps)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()

    async def until(self, count: int, deadline: float) -> bool:
        """Read until `count` results or the (monotonic) deadline; True when reached."""
        while len(self.published) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            batch = await self.consumer.getmany(timeout_ms=int(min(left, 0.1) * 1000) + 1)
            for records in batch.values():
                for record in records:
                    result = self._decode(record.value)
                    self.published[result.command_id] = record.timestamp
                    self.outcomes[result.outcome] = self.outcomes.get(result.outcome, 0) + 1
        return True


class Snapshot(NamedTuple):
    results: int
    cpu: float
    api_cpu: float
    broker_cpu: float  # 0 when the broker is not the local one of `scripts/kafka`
    machine: float  # busy CPU seconds of every core, whoever spent them
    at: float

    @classmethod
    def take(cls, follower: Follower, pid: int, api_pid: int) -> Snapshot:
        broker = local_broker_pid()
        return cls(
            len(follower.published),
            family_cpu_seconds(pid),
            cpu_seconds(api_pid),
            cpu_seconds(broker) if broker else 0.0,
            machine_busy_seconds(),
            time.monotonic(),
        )

    def cores(self, since: Snapshot) -> dict[str, float]:
        """Cores busy on average since `since`: the system's, the broker's, the whole
        machine's (the rest is the fake API, this benchmark and anything else running)."""
        seconds = self.at - since.at
        return {
            "system": (self.cpu - since.cpu) / seconds,
            "broker": (self.broker_cpu - since.broker_cpu) / seconds,
            "machine": (self.machine - since.machine) / seconds,
        }


def local_broker_pid() -> int | None:
    """The pid of the broker `scripts/kafka` started in this checkout, if it runs."""
    run = Path(os.environ.get("KAFKA_RUN", Path(__file__).parent.parent / ".kafka"))
    with contextlib.suppress(OSError, ValueError):
        pid = int((run / "kafka.pid").read_text())
        if Path(f"/proc/{pid}").exists():
            return pid
    return None


class FakeApi:
    """The fake API process and its admin requests."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.fake_api", "--port", str(self.port)]
        )
        wait_for_port(self.port, self.process, "the fake API")

    async def latency(self, ms: float) -> None:
        async with aiohttp.ClientSession() as session:
            (await session.put(f"{self.url}/_fake/latency/{ms}")).raise_for_status()

    async def answered(self) -> dict[str, float]:
        """Request text (= command id) → response time, since the last call."""
        async with aiohttp.ClientSession() as session, session.get(f"{self.url}/_fake/log") as r:
            log: list[tuple[float, str]] = msgspec.json.decode(await r.read())
        decode = msgspec.json.Decoder(dict[str, str]).decode
        return {decode(body)["text"]: at for at, body in log}


class Run:
    """One benchmark run: the plan, the fake API and a unique prefix for topics and groups."""

    def __init__(self, plan: Plan, api: FakeApi, jvm_peer: list[str] | None = None) -> None:
        self.plan, self.api = plan, api
        self.jvm_peer = jvm_peer  # the argv that starts the JVM peer, when it runs
        self.id = uuid.uuid4().hex[:8]
        self.phases = 0
        self.base = f"{api.url}/api/conversational-ai-agent"
        self.logs = Path(tempfile.mkdtemp(prefix="bench-compare-"))
        self.sent: Counter[str] = Counter()  # commands produced per topic

    async def produce(self, topic: str, commands: list[dict[str, Any]]) -> None:
        """Produce commands at once, keyed by the ordering rules."""
        await produce_keyed(topic, commands)
        self.sent[topic] += len(commands)

    @contextlib.asynccontextmanager
    async def topics(self, system: str) -> AsyncIterator[dict[str, str]]:
        self.phases += 1
        prefix = f"bench.{self.id}.{self.phases}"
        kinds = (
            ("commands", "results", "state", "dlq")
            if system in WORKERS
            else ("commands", "results")
        )
        topics = {k: f"{prefix}.{k}" for k in kinds}
        await create_topics(list(topics.values()))
        try:
            yield topics
        finally:
            await create_topics(list(topics.values()), delete=True)

    def spawn(self, system: str, topics: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
        """Start a system; returns the process and the worker's ops port (0 for the peers)."""
        group = f"bench-{self.id}-{self.phases}"
        if system in WORKERS:
            port = free_port()
            env = worker_env(f"{self.id}-{self.phases}", self.api.url, topics, port, self.plan.keys)
            env |= {
                "CONVOAI_CUSTOMER_ID": "bench",
                "CONVOAI_CUSTOMER_SECRET": "bench",
                "CONVOAI_DRAIN_GRACE_SECONDS": "2",
                **WORKERS[system],
            }
            argv = [sys.executable, "-m", "worker", "run"]
        else:
            port, env = 0, None
            if system == JVM_PEER:
                assert self.jvm_peer is not None  # noqa: S101 - built before the run
                argv = [*self.jvm_peer, "--api", self.base]
            else:
                argv = [sys.executable, "-m", "bench.peers", system, "--api", self.base]
            argv += ["--commands", topics["commands"], "--results", topics["results"]]
            argv += ["--group", group]
        with (self.logs / f"{self.phases}-{system}.log").open("wb") as log:
            return subprocess.Popen(argv, env=env, stdout=log, stderr=log), port

    async def backlog(self, system: str, latency: float) -> dict[str, Any]:
        """Phase 1: warm up, then a backlog of N commands at the given latency."""
        plan = self.plan
        await self.api.latency(latency)
        async with self.topics(system) as topics, Follower(topics["results"]) as results:
            await self.produce(topics["commands"], speaks("w", plan.warmup, plan.keys))
            started = time.time()
            process, port = self.spawn(system, topics)
            ready = asyncio.create_task(readiness(port)) if port else None
            try:
                if not await results.until(1, time.monotonic() + FIRST_RESULT_SECONDS):
                    raise SystemExit(f"{system}: no result within {FIRST_RESULT_SECONDS:.0f} s")
                await results.until(plan.warmup, time.monotonic() + WARMUP_SECONDS)
                if system == PROCESSES:  # the second member's join moves partitions: not meanwhile
                    await asyncio.wait_for(shared(port), FIRST_RESULT_SECONDS)
                figures = await self.measure(results, process.pid, topics["commands"], latency)
                rss, largest = family_peak_rss_mib(process.pid)
                figures |= {"peak_rss_mib": rss, "peak_rss_largest_mib": largest}
                if ready is not None:
                    figures["ready_s"] = (await asyncio.wait_for(ready, 10)) - started
            finally:
                if ready is not None:
                    ready.cancel()
                stop(process)
        first = min(results.published.values()) / 1000 - started
        return {"latency_ms": latency, **figures, "first_result_s": first}

    async def measure(
        self, results: Follower, pid: int, topic: str, latency: float, prefix: str = "b"
    ) -> dict[str, Any]:
        """Produce N commands at once and follow them to their results: commands/s, CPU."""
        plan = self.plan
        start = Snapshot.take(results, pid, self.api.process.pid)
        began = time.time()
        commands = speaks(prefix, plan.commands, plan.keys)
        await self.produce(topic, commands)
        done = await results.until(self.sent[topic], start.at + plan.cap_seconds[latency])
        end = Snapshot.take(results, pid, self.api.process.pid)
        count = end.results - start.results
        last = max(results.published.values()) / 1000 if done else time.time()
        return {
            "commands": count,
            "finished": done,
            "per_second": count / (last - began),
            "cpu_us": (end.cpu - start.cpu) / count * 1e6,
            "outcomes": dict(results.outcomes),
            "api_cpu_share": (end.api_cpu - start.api_cpu) / (end.at - start.at),
            "cores": end.cores(start),
        }

    async def paced(self, system: str, rate: float) -> dict[str, Any]:
        """Phase 2: commands at `rate` per second at 100 ms; added latency per command."""
        await self.api.latency(100.0)
        async with self.topics(system) as topics, Follower(topics["results"]) as results:
            process, port = self.spawn(system, topics)
            try:
                warm = speaks("w", max(1, min(200, int(rate))), self.plan.keys)
                await produce_keyed(topics["commands"], warm)
                if not await results.until(len(warm), time.monotonic() + FIRST_RESULT_SECONDS):
                    raise SystemExit(f"{system}: warm-up results missing")
                if system == PROCESSES:
                    await asyncio.wait_for(shared(port), FIRST_RESULT_SECONDS)
                await self.api.answered()  # forget the warm-up
                # the first second of the pace settles it and is not counted
                count = max(2, int(rate * (1 + self.plan.paced_seconds)))
                commands = speaks("p", count, self.plan.keys)
                await produce_paced(topics["commands"], commands, rate)
                total = len(warm) + len(commands)
                await results.until(total, time.monotonic() + FIRST_RESULT_SECONDS)
            finally:
                stop(process)
        answered = await self.api.answered()
        added = sorted(
            results.published[c["id"]] / 1000 - answered[c["id"]]
            for c in commands[int(rate) :]
            if c["id"] in results.published and c["id"] in answered
        )
        if not added:
            raise SystemExit(f"{system}: no paced command completed")
        return {
            "rate": rate,
            "commands": len(added),
            "p50_ms": added[len(added) // 2] * 1000,
            "p99_ms": added[min(len(added) - 1, int(len(added) * 0.99))] * 1000,
        }

    async def bare(self, latency: float) -> dict[str, Any]:
        """The POSTs alone, from `bench.peers aiohttp`."""
        plan = self.plan
        await self.api.latency(latency)
        api_cpu, at = cpu_seconds(self.api.process.pid), time.monotonic()
        argv = [sys.executable, "-m", "bench.peers", "aiohttp", "--api", self.base]
        argv += [
            "--count",
            str(plan.commands),
            "--warmup",
            str(plan.warmup),
            "--keys",
            str(plan.keys),
        ]
        process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise SystemExit("the bare aiohttp client failed")
        figures: dict[str, float] = msgspec.json.decode(out)
        return {
            "latency_ms": latency,
            "commands": int(figures["count"]),
            "finished": True,
            "per_second": figures["count"] / figures["seconds"],
            "cpu_us": figures["cpu"] / figures["count"] * 1e6,
            "api_cpu_share": (cpu_seconds(self.api.process.pid) - api_cpu)
            / (time.monotonic() - at),
        }

    async def profile(self, out: Path, latency: float) -> dict[str, Any]:
        """The worker's backlog at `latency` under py-spy: a flame graph of N/2 commands, then
        CPU per command by function over N more (one sampler at a time: each pauses the
        process)."""
        plan = self.plan
        await self.api.latency(latency)
        async with self.topics(WORKER) as topics, Follower(topics["results"]) as results:
            commands = topics["commands"]
            await self.produce(commands, speaks("w", plan.warmup, plan.keys))
            process, _ = self.spawn(WORKER, topics)
            try:
                await results.until(plan.warmup, time.monotonic() + FIRST_RESULT_SECONDS)
                async with spying(process.pid, "flamegraph", out.with_suffix(".svg")):
                    await self.produce(commands, speaks("g", plan.commands // 2, plan.keys))
                    await results.until(
                        self.sent[commands], time.monotonic() + FIRST_RESULT_SECONDS
                    )
                async with spying(process.pid, "raw", out):
                    figures = await self.measure(results, process.pid, commands, latency, "f")
            finally:
                stop(process)
        cpu_us = figures["cpu_us"]
        breakdown = report.profile(out, figures["commands"], PROFILE_RATE, cpu_us)
        return {
            "latency_ms": latency,
            "commands": figures["commands"],
            "cpu_us": cpu_us,
            "breakdown": breakdown,
        }


@contextlib.asynccontextmanager
async def spying(pid: int, form: str, path: Path) -> AsyncIterator[None]:
    """py-spy records the process meanwhile (idle samples left out), in `form` to `path`."""
    spy = Path(sys.executable).with_name("py-spy")
    record = [str(spy), "record", "--pid", str(pid), "--rate", str(PROFILE_RATE)]
    with subprocess.Popen(  # noqa: ASYNC220 - runs alongside, stopped below
        [*record, "--format", form, "--output", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as process:
        try:
            await asyncio.sleep(SPY_ATTACH_SECONDS)
            yield
        finally:
            process.send_signal(signal.SIGINT)  # py-spy writes its output and exits
            process.wait(timeout=60)


async def readiness(port: int) -> float:
    """When the worker's /readyz first answers 200 (wall clock)."""
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return time.time()
            await asyncio.sleep(0.02)


async def shared(port: int) -> None:
    """Until every process of a pod (`run --processes N`) has partitions and they have all."""
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                processes = (await response.json())["details"]["processes"]
            shares = [p.get("details", {}).get("assigned_partitions", 0) for p in processes]
            if all(shares) and sum(shares) == PARTITIONS:
                return
            await asyncio.sleep(0.05)


async def produce_paced(topic: str, commands: list[dict[str, Any]], rate: float) -> None:
    """Produce the commands evenly at `rate` per second, those due within one `PACE_TICK` at a
    time: a produce request per command would cost the broker and this process about half of
    the benchmark's two cores at 1,500 commands/s, and starve the system measured."""
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=2)
    await producer.start()
    try:
        began, sent = time.monotonic(), 0
        while sent < len(commands):
            due = min(len(commands), int((time.monotonic() - began) * rate) + 1)
            for command in commands[sent:due]:
                key = str(ordering_key(command)).encode()
                await producer.send(topic, msgspec.json.encode(command), key=key)
            sent = due
            await asyncio.sleep(PACE_TICK)
        await producer.flush()
    finally:
        await producer.stop()


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class JvmPeer(NamedTuple):
    argv: list[str] | None  # None: it cannot run here
    about: str  # its versions and flags, or why it cannot run


def jvm_peer() -> JvmPeer:
    """The JVM peer, built first if needed; or why it cannot run (its row says so)."""
    why = jvm.missing()
    if why is None:
        try:
            jar = jvm.build()
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            why = f"its build failed: {str(error).splitlines()[0]}"
        else:
            return JvmPeer(jvm.command(jar), jvm.describe(jar))
    print(f"{JVM_PEER}: not run, {why}", file=sys.stderr, flush=True)
    return JvmPeer(None, why)


async def bench(args: argparse.Namespace) -> None:
    plan = QUICK if args.quick else FULL
    # the follower's first offset requests on a new topic fail until it has a leader (retried)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    systems = args.systems.split(",") if args.systems else list(SYSTEMS)
    name = "quick" if args.quick else "latest"
    RESULTS.mkdir(exist_ok=True)
    peer = jvm_peer() if JVM_PEER in systems else JvmPeer(None, "")
    api = FakeApi()
    run = Run(plan, api, peer.argv)
    began = time.monotonic()
    figures: dict[str, dict[str, Any]] = {}
    jvm_setup = peer.about if peer.argv else None
    setup = report.setup(plan._asdict(), PARTITIONS, BOOTSTRAP, jvm_setup)
    print(report.describe(setup), flush=True)
    try:
        for system in systems:
            if system == JVM_PEER and peer.argv is None:
                figures[system] = {"not_run": peer.about, "phases": []}
            elif system == "aiohttp":
                figures[system] = {"phases": [await run.bare(ms) for ms in LATENCIES]}
            else:
                phases = [await run.backlog(system, ms) for ms in LATENCIES]
                paced = await run.paced(system, phases[0]["per_second"] / 2)
                figures[system] = {"phases": phases, "paced": paced}
            print(report.row(system, figures[system]), flush=True)
        profile = None
        if not args.no_profile and WORKER in systems:
            ms = args.profile_latency
            profile = await run.profile(RESULTS / f"{name}-worker-{ms:g}ms.collapsed", ms)
    finally:
        stop(api.process)
        print(f"logs of the systems: {run.logs}")
    setup["seconds"] = round(time.monotonic() - began, 1)
    document = {"setup": setup, "systems": figures, "profile": profile}
    (RESULTS / f"{name}.json").write_bytes(msgspec.json.format(msgspec.json.encode(document)))
    markdown = report.markdown(document)
    (RESULTS / f"{name}.md").write_text(markdown)
    report.plot(document, RESULTS / f"{name}.png")
    print(markdown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK.commands:,} commands, short caps"
    )
    parser.add_argument("--systems", help=f"comma-separated subset of {','.join(SYSTEMS)}")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy run")
    parser.add_argument(
        "--profile-latency",
        type=float,
        default=0.0,
        choices=LATENCIES,
        help="API latency (ms) of the py-spy run (default 0)",
    )
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
