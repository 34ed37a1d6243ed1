"""Throughput of the mixed scenario of `tests/pipeline`: 2,400 mixed commands over 200 keys.

Setup: local broker, emulator and worker in their own processes (as `bench_pipeline.py`), fresh
topics with 12 partitions. Each of 200 agents gets start, six speaks, think, interrupt, update,
get and stop, interleaved across agents; the backlog is produced first, then the worker starts.
Prints commands/s from the first to the last result, at the given API latency.

Usage: uv run python bench/bench_mixed.py [--agents 200] [--latency-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

from bench.bench_pipeline import (
    Processes,
    ResultCounter,
    create_topics,
    produce_keyed,
    set_latency,
    worker_env,
)
from devtools.local import free_port, wait_for_port
from tests.pipeline.scenarios import agent_lifecycle


async def bench(agents: int, latency_ms: float) -> None:
    run = uuid.uuid4().hex[:8]
    topics = {k: f"bench.{run}.{k}" for k in ("commands", "results", "state", "dlq")}
    await create_topics(list(topics.values()))
    emulator_port, worker_port = free_port(), free_port()
    base = f"http://127.0.0.1:{emulator_port}"
    env = worker_env(run, base, topics, worker_port, agents)
    processes = Processes(env, emulator_port, worker_port, agents)
    try:
        wait_for_port(emulator_port, processes.emulator, "the emulator")
        await set_latency(base, latency_ms)
        commands = agent_lifecycle(run, agents)
        await produce_keyed(topics["commands"], commands)
        counter = ResultCounter(topics["results"])
        await counter.start()
        processes.start_worker()
        first, last, outcomes = await counter.count(len(commands), 300)
        await counter.stop()
    finally:
        processes.stop()
    print(
        f"{len(commands)} mixed commands over {agents} keys at {latency_ms:.0f} ms API latency: "
        f"{last - first:.2f} s = {len(commands) / (last - first):,.0f} commands/s  {outcomes}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    asyncio.run(bench(args.agents, args.latency_ms))


if __name__ == "__main__":
    main()
