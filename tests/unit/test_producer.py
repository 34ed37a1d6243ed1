"""The worker's producer is configured for the delivery guarantees the README states."""

from __future__ import annotations

from worker.kafka.aio import AioOutputSink
from worker.settings import Settings


async def test_outputs_are_produced_idempotently_and_acknowledged_by_all_replicas() -> None:
    """acks=all and idempotence: an acknowledged output survives a leader change, once."""
    sink = AioOutputSink(Settings(max_record_bytes=500_000, max_result_bytes=100_000))
    try:
        producer = sink._producer  # aiokafka exposes its settings nowhere else
        assert producer._sender._acks == -1  # "all"
        assert producer._txn_manager is not None  # present only when idempotent
        assert producer._max_request_size == 500_000
    finally:
        await sink.close()
