"""CPU per command of the worker's own path — decode, schedule, HTTP call, outputs, commit —
without Kafka's network, for A/B comparisons of code changes on a noisy machine.

Setup (printed with the figures): one whole worker (`worker.app.Worker`, uvloop) on the
in-memory broker, its real aiohttp client sending every speak to the benchmark's fake API
(`bench/fake_api.py`, 0 ms, its own process); rounds of N `agent.speak` by agent id over K keys,
produced as a backlog, each round timed from its first record to its last result. CPU per
command is this process's user+system time over the round divided by N (the fake API's CPU is
not counted). Other work on the machine only adds to a round's figure, so the minimum over the
rounds is the figure to compare; run the two versions of a change one after the other, several
times, and compare minima. `--profile` prints the functions with the most own time (cProfile;
it slows everything down, so its figures are shares, not costs).

Usage: uv run python -m bench.bench_hotpath [--commands 5000] [--keys 1000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from typing import Any

import msgspec
import uvloop
from prometheus_client import CollectorRegistry

from contracts.keys import ordering_key
from devtools.local import free_port, wait_for_port
from devtools.workload import speaks
from worker.app import Worker
from worker.kafka.memory import InMemoryBroker
from worker.logging import configure_logging
from worker.metrics import Metrics
from worker.settings import Settings

APP_ID = "bench"
COMMANDS_TOPIC = "convoai.commands"
RESULTS_TOPIC = "convoai.results"


def settings(api_port: int) -> Settings:
    """The worker's defaults, pointed at the fake API, quiet logs, no ops port in the way."""
    values: dict[str, Any] = {
        "app_id": APP_ID,
        "api_base_url": f"http://127.0.0.1:{api_port}/api/conversational-ai-agent",
        "customer_id": "bench",
        "customer_secret": "bench",
        "http_host": "127.0.0.1",
        "http_port": 0,
        "log_format": "json",
        "log_level": "WARNING",
    }
    return msgspec.convert(values, Settings)


def results(broker: InMemoryBroker) -> int:
    """How many results there are, without copying the topic (this loop's CPU counts too)."""
    topic = RESULTS_TOPIC
    return sum(len(broker.partition_log(topic, p)) for p in range(broker.partitions(topic)))


async def one_round(broker: InMemoryBroker, prefix: str, commands: int, keys: int) -> float:
    """Produce a backlog of speaks and wait for all their results; CPU seconds spent."""
    before = results(broker)
    start = time.process_time()
    for command in speaks(prefix, commands, keys):
        key = ordering_key(command) or ""
        broker.produce(COMMANDS_TOPIC, msgspec.json.encode(command), key=key.encode())
    deadline = time.monotonic() + 120
    while results(broker) - before < commands:
        if time.monotonic() > deadline:
            raise SystemExit(f"round {prefix}: results missing after 120 s")
        await asyncio.sleep(0.01)
    return time.process_time() - start


async def measure(args: argparse.Namespace, api_port: int) -> list[float]:
    """Start a worker on the in-memory broker, run the rounds, return µs per command each."""
    broker = InMemoryBroker()
    config = settings(api_port)
    configure_logging(config)
    worker = Worker(config, Metrics(CollectorRegistry()), kafka=broker.backend(config))
    task = asyncio.create_task(worker.run())
    while not worker.health.readiness().ok:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    await one_round(broker, "warm", args.commands // 5, args.keys)
    figures = []
    profiler = cProfile.Profile() if args.profile else None
    for number in range(args.rounds):
        if profiler is not None:
            profiler.enable()
        seconds = await one_round(broker, f"r{number}", args.commands, args.keys)
        if profiler is not None:
            profiler.disable()
        figures.append(seconds / args.commands * 1e6)
    worker.request_stop()
    await task
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.profile)
        print(out.getvalue())
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=5000, help="speaks per round")
    parser.add_argument("--keys", type=int, default=1000, help="agent ids they are spread over")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print top N")
    args = parser.parse_args()
    port = free_port()
    api = subprocess.Popen(
        [sys.executable, "-m", "bench.fake_api", "--port", str(port), "--latency-ms", "0"]
    )
    try:
        wait_for_port(port, api, "fake API")
        figures = uvloop.run(measure(args, port))
    finally:
        api.terminate()
        api.wait(timeout=10)
    load = os.getloadavg()[0]
    print(
        f"worker hot path: {args.rounds} rounds of {args.commands:,} speaks over {args.keys:,} "
        f"keys, in-memory broker, fake API at 0 ms; Python {platform.python_version()}, "
        f"load average {load:.2f}"
    )
    rounds = " ".join(f"{figure:.0f}" for figure in figures)
    print(f"CPU µs per command: min {min(figures):.0f}, median {statistics.median(figures):.0f}")
    print(f"rounds: {rounds}")


if __name__ == "__main__":
    main()
