"""The peers of the comparison benchmark: the same job written by hand or with a framework.

Each consumes `agent.speak` commands (consumer group, earliest, no auto-commit), POSTs
`{"text": …}` to the command's agent, publishes one result record keyed like the command
(acks=all) and commits once results are acknowledged. All use one aiohttp session with the
worker's default pool of 1,000 connections, run on uvloop and log nothing per message.

- `aiokafka-sequential`: `async for` record: POST, `send_and_wait`, commit.
- `aiokafka-gather`: `getmany` (up to 1,000 records), gather them all (no per-key order), commit.
- `faststream`: FastStream's default Kafka subscriber, acknowledged after the handler.
- `faststream-concurrent`: the same handler under faststream-concurrent-aiokafka (limit 1,000).
- `aiohttp`: no Kafka, only the POSTs (concurrency 256); prints its own CPU and wall seconds.

The JVM peer, Confluent Parallel Consumer (`bench/parallel-consumer`, `bench/jvm.py`), takes the
same arguments as the Kafka peers here and sends the same requests and result records
(`tests/bench/test_parallel_consumer.py`).

Usage: python -m bench.peers SYSTEM --api URL [--commands T --results T --group G]
       python -m bench.peers aiohttp --api URL --count N --warmup W --keys K
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from devtools.local import exit_with_parent
from devtools.workload import speaks

BOOTSTRAP = os.environ.get("CONVOAI_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
APP = "bench-app"
POOL = 1000  # HTTP connections: the worker's CONVOAI_API_MAX_CONNECTIONS default
LIMIT = 1_000  # records in flight: the worker's CONVOAI_MAX_IN_FLIGHT in the benchmark
AUTHORIZATION = {"Authorization": "Basic YmVuY2g6YmVuY2g="}  # bench:bench, as the worker sends


class Api:
    """One aiohttp session for the process."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=POOL), headers=AUTHORIZATION
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def speak(self, command: dict[str, Any]) -> tuple[int, Any]:
        assert self.session is not None  # noqa: S101 - opened at startup
        url = f"{self.base}/v2/projects/{APP}/agents/{command['agent_id']}/speak"
        async with self.session.post(url, json={"text": command["text"]}) as response:
            return response.status, await response.json()

    async def result(self, command: dict[str, Any]) -> bytes:
        """Call the API and build the command's result record."""
        status, data = await self.speak(command)
        outcome = "succeeded" if status == 200 else "failed"
        result = {"command_id": command["id"], "command": command["command"], "outcome": outcome}
        return json.dumps({**result, "status": status, "data": data}).encode()


def kafka_clients(args: argparse.Namespace) -> tuple[AIOKafkaConsumer, AIOKafkaProducer]:
    consumer = AIOKafkaConsumer(
        args.commands,
        bootstrap_servers=BOOTSTRAP,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    return consumer, AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")


async def with_kafka(
    args: argparse.Namespace,
    loop: Callable[[AIOKafkaConsumer, AIOKafkaProducer, Api], Awaitable[None]],
) -> None:
    consumer, producer = kafka_clients(args)
    api = Api(args.api)
    await api.open()
    await producer.start()
    await consumer.start()
    try:
        await loop(consumer, producer, api)
    finally:
        await consumer.stop()
        await producer.stop()
        await api.close()


def sequential(
    results: str,
) -> Callable[[AIOKafkaConsumer, AIOKafkaProducer, Api], Awaitable[None]]:
    async def loop(consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, api: Api) -> None:
        async for record in consumer:
            value = await api.result(json.loads(record.value))
            await producer.send_and_wait(results, value, key=record.key)
            await consumer.commit()

    return loop


def gather(results: str) -> Callable[[AIOKafkaConsumer, AIOKafkaProducer, Api], Awaitable[None]]:
    async def loop(consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, api: Api) -> None:
        async def one(record: ConsumerRecord[bytes, bytes]) -> None:
            value = await api.result(json.loads(record.value))
            await producer.send_and_wait(results, value, key=record.key)

        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=LIMIT)
            records = [record for batch in batches.values() for record in batch]
            if records:
                await asyncio.gather(*(one(record) for record in records))
                await consumer.commit()

    return loop


async def faststream(args: argparse.Namespace, *, concurrent: bool) -> None:
    from faststream import FastStream  # noqa: PLC0415 - the aiokafka peers start without it
    from faststream.kafka import KafkaBroker  # noqa: PLC0415
    from faststream.middlewares import AckPolicy  # noqa: PLC0415
    from faststream_concurrent_aiokafka import (  # noqa: PLC0415
        KafkaConcurrentProcessingMiddleware,
        initialize_concurrent_processing,
        stop_concurrent_processing,
    )

    api = Api(args.api)
    # per-message logs at DEBUG, i.e. off, as every system of the benchmark
    broker = KafkaBroker(BOOTSTRAP, acks="all", log_level=logging.DEBUG)
    if concurrent:
        broker.add_middleware(KafkaConcurrentProcessingMiddleware)

    @broker.subscriber(
        args.commands,
        group_id=args.group,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL if concurrent else AckPolicy.ACK,
    )
    async def on_command(command: dict[str, Any]) -> None:
        value = await api.result(command)
        await broker.publish(value, args.results, key=command["agent_id"].encode())

    async def start() -> None:
        await api.open()
        if concurrent:
            await initialize_concurrent_processing(
                context=broker.context,
                concurrency_limit=LIMIT,
                commit_batch_size=100,
                commit_batch_timeout_sec=5.0,
            )

    async def stop() -> None:
        if concurrent:
            await stop_concurrent_processing(broker.context)
        await api.close()

    await FastStream(broker, on_startup=[start], on_shutdown=[stop]).run()


async def bare(args: argparse.Namespace) -> None:
    """POSTs alone; prints the process's CPU and wall seconds of the requests after warm-up."""
    api = Api(args.api)
    await api.open()
    commands = speaks("bare", args.count, args.keys)
    semaphore = asyncio.Semaphore(POOL)

    async def one(command: dict[str, Any]) -> None:
        async with semaphore:
            status, _ = await api.speak(command)
            if status != 200:
                raise SystemExit(f"the API answered {status}")

    await asyncio.gather(*(one(c) for c in commands[: args.warmup]))
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(c) for c in commands[args.warmup :]))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await api.close()
    print(json.dumps({"cpu": cpu, "seconds": wall, "count": args.count - args.warmup}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "system",
        choices=[
            "aiokafka-sequential",
            "aiokafka-gather",
            "faststream",
            "faststream-concurrent",
            "aiohttp",
        ],
    )
    parser.add_argument("--api", required=True, help="base URL, …/api/conversational-ai-agent")
    parser.add_argument("--commands", default="")
    parser.add_argument("--results", default="")
    parser.add_argument("--group", default="")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--keys", type=int, default=1)
    args = parser.parse_args()
    exit_with_parent()
    runs: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
        "aiokafka-sequential": lambda: with_kafka(args, sequential(args.results)),
        "aiokafka-gather": lambda: with_kafka(args, gather(args.results)),
        "faststream": lambda: faststream(args, concurrent=False),
        "faststream-concurrent": lambda: faststream(args, concurrent=True),
        "aiohttp": lambda: bare(args),
    }
    uvloop.run(runs[args.system]())


if __name__ == "__main__":
    main()
