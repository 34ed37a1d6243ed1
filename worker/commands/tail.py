"""`convoai-worker tail`: follow the results, agent-state and dead-letter topics.

For people: one readable line per event. For scripts: `--json` prints each event as a JSON
object with a `topic` field (dead letters with their original key, value and headers). Bounded
runs (`--max-results`, `--idle-timeout`) let the demo and tests stop once they have seen what
they expect.
"""

from __future__ import annotations

import argparse
import sys
import time

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from worker.commands.arguments import non_negative, non_negative_int
from worker.commands.configured import settings_for
from worker.commands.exit_codes import NOT_SUCCEEDED, OK
from worker.commands.kafka_errors import kafka_failure
from worker.commands.render import render
from worker.event_loop import run_async
from worker.kafka.connection import client_options, stop_within
from worker.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    """Where to start, how to print, when to stop."""
    parser.add_argument("--bootstrap", help="Kafka bootstrap (default: CONVOAI_KAFKA_BOOTSTRAP)")
    parser.add_argument("--json", action="store_true", help="print events as JSON lines")
    parser.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest record, not the newest"
    )
    parser.add_argument(
        "--max-results",
        type=non_negative_int,
        default=0,
        help="stop after this many result events (0 = never)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=non_negative,
        default=0.0,
        help="stop after this many seconds without any event (0 = never)",
    )


def run(args: argparse.Namespace) -> int:
    """Follow until interrupted or a stop condition is met."""
    settings = settings_for(
        api=False, flags={"kafka_bootstrap": "--bootstrap"}, kafka_bootstrap=args.bootstrap
    )
    try:
        return run_async(_follow(settings, args))
    except KeyboardInterrupt:
        return OK
    except KafkaError as error:
        raise kafka_failure(f"cannot follow {settings.kafka_bootstrap}", error) from None


async def _follow(settings: Settings, args: argparse.Namespace) -> int:
    consumer = AIOKafkaConsumer(
        settings.topic_results,
        settings.topic_state,
        settings.topic_dlq,
        **client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if args.from_beginning else "latest",
    )
    results = 0
    last_event = time.monotonic()
    try:
        await consumer.start()
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
                return OK
            if args.idle_timeout and time.monotonic() - last_event > args.idle_timeout:
                return OK if not args.max_results else NOT_SUCCEEDED
    finally:
        await stop_within(consumer.stop(), "tail")  # also after a failed start: no warning
