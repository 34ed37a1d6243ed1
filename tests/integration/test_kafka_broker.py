"""The real broker works with aiokafka the way the worker uses it: produce, consume, commit."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests import kafka
from tests.conftest import TopicFactory

pytestmark = pytest.mark.kafka


async def test_produce_consume_commit_roundtrip(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    """Records produced with acks=all are consumed in order and the committed offset is durable."""
    topic = await topic_factory("roundtrip", partitions=2)
    group = kafka.unique_name("group")
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for i in range(20):
            await producer.send(topic, key=f"k{i % 4}".encode(), value=f"{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        seen: dict[str, list[int]] = {}
        while sum(len(v) for v in seen.values()) < 20:
            batch = await consumer.getmany(timeout_ms=5000)
            assert batch, "no records within 5 s"
            for records in batch.values():
                for record in records:
                    assert record.key is not None
                    assert record.value is not None
                    seen.setdefault(record.key.decode(), []).append(int(record.value))
        await consumer.commit()
        committed = {p: await consumer.committed(TopicPartition(topic, p)) for p in (0, 1)}
    finally:
        await consumer.stop()

    assert {k: sorted(v) for k, v in seen.items()} == {
        f"k{j}": list(range(j, 20, 4)) for j in range(4)
    }
    for key, values in seen.items():
        assert values == sorted(values), f"key {key} out of order"
    assert sum(c or 0 for c in committed.values()) == 20

    # A new consumer in the same group starts at the committed offsets, not at the beginning.
    again = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await again.start()
    try:
        leftover: list[object] = []
        for _ in range(50):
            batch = await again.getmany(timeout_ms=200)
            leftover.extend(r for records in batch.values() for r in records)
            if again.assignment():
                break
        positions = {tp.partition: await again.position(tp) for tp in again.assignment()}
    finally:
        await again.stop()
    assert leftover == []
    assert positions == {p: committed[p] for p in (0, 1)}
