"""`convoai-worker send`: produce commands from JSON lines, keyed by the ordering rules.

Every line is checked with the same decoder the worker uses before anything is produced, so a
typo is reported with its line number instead of landing in the dead-letter topic. `--raw`
skips the check (to exercise the worker's own rejection path).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from tqdm import tqdm

from contracts import CommandDecodeError, decode_command
from contracts.keys import ordering_key
from worker.commands.kafka_errors import TOPIC_CHECK_SECONDS, describe_kafka_error
from worker.event_loop import run_async
from worker.kafka.connection import client_options, stop_within
from worker.logging import configure_logging
from worker.settings import Settings, load_settings


class _Line(msgspec.Struct):
    number: int
    value: bytes
    key: bytes | None


def configure(parser: argparse.ArgumentParser) -> None:
    """Input selection and the target topic."""
    parser.add_argument(
        "file", nargs="?", default="-", help="JSON lines file, one command per line (- = stdin)"
    )
    parser.add_argument("--topic", help="command topic (default: CONVOAI_TOPIC_COMMANDS)")
    parser.add_argument("--bootstrap", help="Kafka bootstrap (default: CONVOAI_KAFKA_BOOTSTRAP)")
    parser.add_argument(
        "--raw", action="store_true", help="send lines as they are, without checking them"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Validate and produce every line; exit 1 when any line was refused, 0 otherwise."""
    settings = load_settings(kafka_bootstrap=args.bootstrap, topic_commands=args.topic)
    configure_logging(settings)  # to stderr: stdout carries the output
    stream: IO[bytes] = sys.stdin.buffer if args.file == "-" else Path(args.file).open("rb")  # noqa: SIM115
    with stream:
        lines, refused = _read(stream, check=not args.raw)
    try:
        sent = run_async(_produce(settings, settings.topic_commands, lines, quiet=args.quiet))
    except (KafkaError, TimeoutError) as error:
        sys.stderr.write(
            f"convoai-worker send: nothing sent to {settings.topic_commands} on "
            f"{settings.kafka_bootstrap}: {describe_kafka_error(error)}\n"
        )
        return 2
    sys.stderr.write(
        f"sent {sent} command(s) to {settings.topic_commands}"
        + (f", refused {refused} invalid line(s)" if refused else "")
        + "\n"
    )
    return 1 if refused else 0


def _read(stream: IO[bytes], *, check: bool) -> tuple[list[_Line], int]:
    lines: list[_Line] = []
    refused = 0
    for number, raw in _numbered(stream):
        try:
            obj: Any = msgspec.json.decode(raw)
            if check:
                decode_command(raw)
        except (msgspec.DecodeError, CommandDecodeError) as error:
            if check:
                sys.stderr.write(f"line {number}: {error}\n")
                refused += 1
                continue
            obj = None
        key = ordering_key(obj) if isinstance(obj, dict) else None
        lines.append(_Line(number, raw, key.encode() if key else None))
    return lines, refused


def _numbered(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(stream, start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith(b"#"):
            yield number, stripped


async def _produce(settings: Settings, topic: str, lines: list[_Line], *, quiet: bool) -> int:
    producer = AIOKafkaProducer(
        acks="all", enable_idempotence=True, linger_ms=5, **client_options(settings)
    )
    try:
        await producer.start()
        # fail in seconds, with the topic's name, instead of after the producer's long timeout
        await asyncio.wait_for(producer.partitions_for(topic), TOPIC_CHECK_SECONDS)
        with tqdm(total=len(lines), unit="cmd", disable=quiet, file=sys.stderr) as bar:
            acks = []
            for line in lines:
                ack = await producer.send(topic, value=line.value, key=line.key)
                ack.add_done_callback(lambda _: bar.update(1))
                acks.append(ack)
            for ack in acks:
                await ack
    finally:
        await stop_within(producer.stop(), "send")
    return len(lines)
