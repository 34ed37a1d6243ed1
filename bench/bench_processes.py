"""`run --processes 2` against one process, in alternating rounds: how much a second core adds.

On shared cores one run of each says little: other work comes and goes within a minute. So
this runs the backlog phase of `bench/compare.py` (the same fake API, workload, warm-up and
measurement) at one API latency, one process and two processes in turn, ROUNDS times (which goes
first alternates), and prints each pair with the load average before it, then the median of the
pairs' ratios.

Usage: python -m bench.bench_processes [--rounds 3] [--latency 100] [--quick]
(the local broker up, as `make bench` does it: `bash scripts/with-kafka ...`)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics

from bench import report
from bench.bench_pipeline import BOOTSTRAP, PARTITIONS
from bench.compare import FULL, PROCESSES, QUICK, WORKER, FakeApi, Run, stop


async def rounds(count: int, latency: float, quick: bool) -> None:
    plan = QUICK if quick else FULL
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    print(report.describe(report.setup(plan._asdict(), PARTITIONS, BOOTSTRAP)), flush=True)
    print(f"backlog phase at {latency:g} ms, {count} rounds", flush=True)
    api = FakeApi()
    run = Run(plan, api)
    ratios = []
    try:
        for index in range(count):
            order = (WORKER, PROCESSES) if index % 2 == 0 else (PROCESSES, WORKER)
            figures = {}
            for system in order:
                load = os.getloadavg()[0]
                phase = await run.backlog(system, latency)
                figures[system] = phase
                print(
                    f"round {index + 1} {system}: {phase['per_second']:,.0f} commands/s"
                    f"{'' if phase['finished'] else ' (cap reached)'}, "
                    f"{phase['cpu_us']:,.0f} µs CPU per command, load average {load:.2f} "
                    "before",
                    flush=True,
                )
            ratio = figures[PROCESSES]["per_second"] / figures[WORKER]["per_second"]
            ratios.append(ratio)
            print(f"round {index + 1}: 2 processes / 1 = {ratio:.2f}x", flush=True)
    finally:
        stop(api.process)
    print(f"median of {count} rounds: {statistics.median(ratios):.2f}x (logs: {run.logs})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="pairs of runs (default 3)")
    parser.add_argument("--latency", type=float, default=100.0, help="API latency, ms")
    parser.add_argument("--quick", action="store_true", help="the quick plan's sizes")
    args = parser.parse_args()
    asyncio.run(rounds(args.rounds, args.latency, args.quick))


if __name__ == "__main__":
    main()
