"""How the Kafka command-line tools report an unreachable broker or a missing topic."""

from __future__ import annotations

from aiokafka.errors import KafkaConnectionError, UnknownTopicOrPartitionError

TOPIC_CHECK_SECONDS = 10.0  # metadata for an existing topic arrives in milliseconds


def describe_kafka_error(error: BaseException) -> str:
    """One line for an operator, instead of aiokafka's traceback."""
    if isinstance(error, UnknownTopicOrPartitionError | TimeoutError):
        return "the topic does not exist (or its metadata did not arrive)"
    if isinstance(error, KafkaConnectionError):
        return f"cannot connect to the broker ({error})"
    return f"{type(error).__name__}: {error}"
