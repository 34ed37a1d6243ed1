"""How the Kafka command-line tools report an unreachable broker or a missing topic."""

from __future__ import annotations

from aiokafka.errors import KafkaConnectionError, UnknownTopicOrPartitionError

from worker.commands.exit_codes import CommandLineError, UnreachableError

TOPIC_CHECK_SECONDS = 10.0  # metadata for an existing topic arrives in milliseconds


def describe_kafka_error(error: BaseException) -> str:
    """One line for an operator, instead of aiokafka's traceback."""
    if isinstance(error, UnknownTopicOrPartitionError | TimeoutError | LookupError):
        return "the topic does not exist (or its metadata did not arrive)"
    if isinstance(error, KafkaConnectionError):
        return f"cannot connect to the broker ({error})"
    return f"{type(error).__name__}: {error}"


def kafka_failure(context: str, error: BaseException) -> CommandLineError:
    """The error ending a command: exit 3 when the broker is unreachable, else 2 (a topic or
    setting that does not fit the cluster)."""
    message = f"{context}: {describe_kafka_error(error)}"
    if isinstance(error, KafkaConnectionError):
        return UnreachableError(message)
    return CommandLineError(message)
