"""How long the dedupe warm-up takes at startup, and how many ids it recovers.

Setup: a fresh results topic (12 partitions) on the local broker filled with N result events
(the size a real result has), then the results follower's load as the worker runs it at startup with
`CONVOAI_DEDUPE_CAPACITY` = N. Prints ids recovered, seconds and ids/s.

Usage: uv run python bench/bench_dedupe.py [--results 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from contracts import ResultEvent, encode_event
from worker.kafka.aio import AioTopicReader
from worker.pipeline.dedupe import CompletedCommands, newest, remember_results
from worker.pipeline.followers import TopicFollower
from worker.settings import Settings

BOOTSTRAP = os.environ.get("CONVOAI_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
PARTITIONS = 12


async def fill(topic: str, n: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=20, acks=1)
    await producer.start()
    now = datetime.now(UTC)
    try:
        acks = []
        for i in range(n):
            event = ResultEvent(
                command_id=f"cmd-{i}",
                command="agent.speak",
                outcome="succeeded",
                agent_id="1NT29X10YHxxxxxWJOXLYHNYB",
                data={"agent_id": "1NT29X10YHxxxxxWJOXLYHNYB", "channel": "room", "start_ts": 1},
                attempts=1,
                received_at=now,
                completed_at=now,
                duration_ms=12.5,
            )
            acks.append(
                await producer.send(topic, encode_event(event), key=f"agent-{i % 1000}".encode())
            )
        await asyncio.gather(*acks)
    finally:
        await producer.stop()


async def bench(n: int) -> None:
    topic = f"bench.dedupe.{uuid.uuid4().hex[:8]}"
    await fill(topic, n)
    settings = Settings(kafka_bootstrap=BOOTSTRAP, topic_results=topic, dedupe_capacity=n)
    completed = CompletedCommands(n)
    started = time.perf_counter()
    follower = TopicFollower(
        AioTopicReader(settings, topic, "bench-dedupe"),
        remember_results(completed, settings.topic_dlq),
    )
    try:
        read = await follower.load(newest(n))
    finally:
        await follower.close()
    seconds = time.perf_counter() - started
    print(f"broker {BOOTSTRAP}, {PARTITIONS} partitions, {n} result events on the topic")
    rate = read / seconds
    print(f"warm-up: {read} ids in {seconds:.2f} s = {rate:,.0f} ids/s; kept {len(completed)}")
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=int, default=100_000)
    asyncio.run(bench(parser.parse_args().results))


if __name__ == "__main__":
    main()
