"""`convoai-worker tail`: follow the results, agent-state and dead-letter topics.

For people: one readable line per event. For scripts: `--json` prints each event as a JSON
object with a `topic` field. Bounded runs (`--max-results`, `--idle-timeout`) let the demo and
tests stop once they have seen what they expect.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.errors import KafkaError

from contracts import AgentStateEvent, ResultEvent, decode_agent_state, decode_result
from contracts.headers import DLQ_EXCEPTION_CLASS_NAME, DLQ_EXCEPTION_MESSAGE
from worker.commands.kafka_errors import describe_kafka_error
from worker.event_loop import run_async
from worker.kafka.connection import client_options, stop_within
from worker.logging import configure_logging
from worker.settings import Settings, load_settings


def configure(parser: argparse.ArgumentParser) -> None:
    """Where to start, how to print, when to stop."""
    parser.add_argument("--bootstrap", help="Kafka bootstrap (default: CONVOAI_KAFKA_BOOTSTRAP)")
    parser.add_argument("--json", action="store_true", help="print events as JSON lines")
    parser.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest record, not the newest"
    )
    parser.add_argument(
        "--max-results", type=int, default=0, help="stop after this many result events (0 = never)"
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=0.0,
        help="stop after this many seconds without any event (0 = never)",
    )


def run(args: argparse.Namespace) -> int:
    """Follow until interrupted or a stop condition is met."""
    settings = load_settings(kafka_bootstrap=args.bootstrap)
    configure_logging(settings)  # to stderr: stdout carries the output
    try:
        return run_async(_follow(settings, args))
    except KeyboardInterrupt:
        return 0
    except KafkaError as error:
        sys.stderr.write(
            f"convoai-worker tail: cannot follow {settings.kafka_bootstrap}: "
            f"{describe_kafka_error(error)}\n"
        )
        return 2


async def _follow(settings: Settings, args: argparse.Namespace) -> int:
    consumer = AIOKafkaConsumer(
        settings.topic_results,
        settings.topic_state,
        settings.topic_dlq,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        **client_options(settings),
    )
    await consumer.start()
    results = 0
    last_event = time.monotonic()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    last_event = time.monotonic()
                    line, is_result = render(record, settings, as_json=args.json)
                    sys.stdout.write(line + "\n")
                    results += is_result
            sys.stdout.flush()
            if args.max_results and results >= args.max_results:
                return 0
            if args.idle_timeout and time.monotonic() - last_event > args.idle_timeout:
                return 0 if not args.max_results else 1
    finally:
        await stop_within(consumer.stop(), "tail")


def render(record: ConsumerRecord, settings: Settings, *, as_json: bool) -> tuple[str, bool]:
    """One output line for a record, and whether it was a result event."""
    value: bytes = record.value or b""
    if record.topic == settings.topic_results:
        result = decode_result(value)
        return (_as_json("result", result) if as_json else _describe_result(result)), True
    if record.topic == settings.topic_state:
        state = decode_agent_state(value)
        return (_as_json("agent-state", state) if as_json else _describe_state(state)), False
    headers = dict(record.headers)
    error_class = headers.get(DLQ_EXCEPTION_CLASS_NAME, b"").decode().rpartition(".")[2]
    message = headers.get(DLQ_EXCEPTION_MESSAGE, b"").decode()
    if as_json:
        payload = {"topic": "dlq", "offset": record.offset, "error": f"{error_class}: {message}"}
        return msgspec.json.encode(payload).decode(), False
    return f"{_clock(record.timestamp / 1000)} dlq     {error_class}: {message}", False


def _as_json(topic: str, event: ResultEvent | AgentStateEvent) -> str:
    return msgspec.json.encode({"topic": topic, **msgspec.to_builtins(event)}).decode()


def _describe_result(result: ResultEvent) -> str:
    target = f" agent={result.agent_id}" if result.agent_id else ""
    detail = f" error={result.error.code}: {result.error.message}" if result.error else ""
    took = f"({result.attempts} attempt(s), {result.duration_ms:.0f} ms)"
    return (
        f"{_clock(result.completed_at.timestamp())} result  {result.command_id} {result.command} "
        f"{result.outcome} {took}{target}{detail}"
    )


def _describe_state(state: AgentStateEvent) -> str:
    name = f" ({state.name})" if state.name else ""
    cause = f" by {state.command_id}" if state.command_id else ""
    message = f": {state.message}" if state.message else ""
    return (
        f"{_clock(state.observed_at.timestamp())} state   {state.agent_id}{name} "
        f"{state.status} via {state.source}{cause}{message}"
    )


def _clock(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%H:%M:%S")
