"""100,000 random and mutated records through decode → result / dead letter: nothing escapes.

Every input ends one of two ways, and nothing else happens: it runs (a result with its id), or
it is refused (a dead letter that locates the original record and says why, plus a `rejected`
result when the record has a usable id). The processor runs with the real decoder, output
builder and publisher on the in-memory broker; the executor is a stand-in that succeeds at
once, because the API side is not what is fuzzed here.

Inputs: mutations of the 19 documented commands (byte flips, cuts, insertions, JSON-level
edits: wrong types, removed or unknown fields, nulls, huge or odd strings), raw random bytes,
and, through hypothesis, arbitrary bytes and JSON values.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from contracts import DecodedCommand, ErrorInfo, ResultEvent
from contracts.headers import DLQ_ORIGINAL_OFFSET, DLQ_REASON
from tests.contracts.strategies import json_values
from tests.contracts.support import guide_examples
from tests.jobs import Job
from worker.execution import Execution
from worker.execution.caller import Progress
from worker.kafka.memory import InMemoryBroker
from worker.metrics import Metrics
from worker.observability.health import Health
from worker.pipeline.dedupe import CompletedCommands, DedupeKey
from worker.pipeline.outputs import Outputs
from worker.pipeline.processor import CommandProcessor
from worker.pipeline.publisher import Publisher
from worker.settings import Settings

SEED = 20261130
MUTATED = 90_000
RANDOM = 10_000
MAX_RECORD = 300_000
SETTINGS = Settings(max_record_bytes=MAX_RECORD, max_result_bytes=MAX_RECORD // 2)
COMMANDS, RESULTS, DLQ = SETTINGS.topic_commands, SETTINGS.topic_results, SETTINGS.topic_dlq
ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**70,
    1.5e308,
    "",
    " ",
    "\x00",
    "é" * 600,
    "x" * 70_000,
    [],
    {},
    [None],
    {"": None},
]


class InstantExecutor:
    """Succeeds at once with the command's REST payload as the response body."""

    async def execute(
        self, decoded: DecodedCommand, *, received_at: datetime, progress: Progress | None = None
    ) -> Execution:
        del progress
        now = datetime.now(UTC)
        result = ResultEvent(
            command_id=decoded.command.id,
            command=decoded.command.tag(),
            outcome="succeeded",
            data=decoded.rest,
            attempts=1,
            received_at=received_at,
            completed_at=now,
            duration_ms=0.0,
        )
        return Execution(result, [])

    def interrupted(
        self, decoded: DecodedCommand, *, received_at: datetime, progress: Progress
    ) -> Execution:
        raise AssertionError(f"nothing is interrupted here: {decoded}, {received_at}, {progress}")


class Harness:
    """The processor on an in-memory broker; `feed` runs one value through it and checks it."""

    def __init__(self) -> None:
        self.broker = InMemoryBroker(max_record_bytes=MAX_RECORD + 100_000)
        for topic in (COMMANDS, RESULTS, DLQ, SETTINGS.topic_state):
            self.broker.create_topic(topic)
        metrics = Metrics(CollectorRegistry())
        sink = self.broker.output_sink()
        sink.max_record_bytes = MAX_RECORD
        self.completed = CompletedCommands(1000)
        self.processor = CommandProcessor(
            InstantExecutor(),
            Outputs(SETTINGS),
            Publisher(sink, metrics, Health(SETTINGS)),
            self.completed,
            metrics,
        )
        self.seen = {"ran": 0, "refused": 0, "duplicate": 0}

    async def feed(self, value: bytes | None) -> None:
        record = self.broker.produce(COMMANDS, value, key=b"fuzz")
        result_log = self.broker.partition_log(RESULTS, 0)
        letter_log = self.broker.partition_log(DLQ, 0)
        results, letters = len(result_log), len(letter_log)
        await self.processor(Job(record))
        new_results = [
            msgspec.json.decode(r.value or b"", type=ResultEvent) for r in result_log[results:]
        ]
        new_letters = letter_log[letters:]
        if not new_letters and not new_results:
            # an edit can give two inputs the same id: the second is a redelivery to dedupe
            assert _known(self.completed, value), value
            self.seen["duplicate"] += 1
        elif new_letters:
            (letter,) = new_letters
            headers = dict(letter.headers)
            assert headers[DLQ_ORIGINAL_OFFSET] == str(record.offset).encode(), value
            assert headers[DLQ_REASON] in {b"decode_error", b"invalid_command"}, value
            assert [r.outcome for r in new_results] in ([], ["rejected"]), value
            self.seen["refused"] += 1
        else:
            (result,) = new_results
            assert result.outcome == "succeeded", value
            assert result.command_id == msgspec.json.decode(value or b"")["id"], value
            self.seen["ran"] += 1


def _known(completed: CompletedCommands, value: bytes | None) -> bool:
    """Whether the command of `value` is remembered as done, as it ran or as it was refused."""
    try:
        fields = msgspec.json.decode(value or b"")
    except msgspec.DecodeError:
        fields = None

    def text(name: str) -> str:
        found = fields.get(name) if isinstance(fields, dict) else None
        return found if isinstance(found, str) else ""

    return any(
        DedupeKey(text("app_id"), text("id"), rejected) in completed
        for rejected in (None, "invalid_command", "decode_error")
    )


def corpus() -> list[dict[str, Any]]:
    """The documented example of each command, as JSON objects."""
    return [json.loads(text) for kind, _, text in guide_examples() if kind == "command"]


def mutations(rng: random.Random, count: int) -> Iterator[bytes]:
    """`count` mutated commands, each with a fresh id (so none is skipped as a duplicate)."""
    seeds = corpus()
    for n in range(count):
        document = dict(rng.choice(seeds), id=f"fuzz-{n}")
        if rng.random() < 0.6:
            document = _edit(rng, document)
        data = msgspec.json.encode(document)
        if rng.random() < 0.4:
            data = _scramble(rng, data)
        yield data


def _edit(rng: random.Random, document: dict[str, Any]) -> dict[str, Any]:
    """A JSON-level change: a field removed, added, retyped or replaced by an odd value."""
    key = rng.choice(sorted(document))
    action = rng.randrange(4)
    if action == 0:
        document.pop(key)
    elif action == 1:
        document[f"x_{rng.randrange(100)}"] = rng.choice(ODD_VALUES)
    elif action == 2:
        document[key] = rng.choice(ODD_VALUES)
    else:
        value = document[key]
        document[key] = {"nested": value} if rng.random() < 0.5 else [value]
    return document


def _scramble(rng: random.Random, data: bytes) -> bytes:
    """A byte-level change: flips, a cut, an insertion or a duplicated slice."""
    buffer = bytearray(data)
    action = rng.randrange(4)
    if action == 0:
        for _ in range(rng.randint(1, 4)):
            buffer[rng.randrange(len(buffer))] = rng.randrange(256)
    elif action == 1:
        del buffer[rng.randrange(len(buffer)) :]
    elif action == 2:
        position = rng.randrange(len(buffer) + 1)
        buffer[position:position] = rng.randbytes(rng.randint(1, 16))
    else:
        start = rng.randrange(len(buffer))
        buffer[start:start] = buffer[start : start + rng.randint(1, 64)] * rng.randint(2, 50)
    return bytes(buffer)


def noise(rng: random.Random, count: int) -> Iterator[bytes | None]:
    """Random bytes of every size class, a few nulls and one record near the size limit."""
    for n in range(count):
        if n % 2000 == 0:
            yield None
        elif n % 5000 == 1:
            yield b"{" + rng.randbytes(MAX_RECORD)
        else:
            yield rng.randbytes(rng.choice((0, 1, 8, 64, 512)))


@pytest.fixture(autouse=True)
def quiet_logs() -> Iterator[None]:
    """A line per refused record is right in production and only slows a fuzz run down."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    yield
    structlog.reset_defaults()


async def test_a_hundred_thousand_mutated_and_random_records() -> None:
    """No exception escapes; every input either ran or was refused with a dead letter."""
    rng = random.Random(SEED)
    harness = Harness()
    for value in mutations(rng, MUTATED):
        await harness.feed(value)
    for noisy in noise(rng, RANDOM):
        await harness.feed(noisy)
    assert sum(harness.seen.values()) == MUTATED + RANDOM
    assert harness.seen["ran"] > 10_000, harness.seen  # the mutations also reach the executor
    assert harness.seen["refused"] > 10_000, harness.seen


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2048) | json_values.map(msgspec.json.encode))
def test_arbitrary_bytes_and_json_values(value: bytes) -> None:
    """Hypothesis-generated bytes and JSON documents end as a result or a dead letter."""
    asyncio.run(Harness().feed(value))


def test_refused_records_say_why() -> None:
    """A refusal is visible to the producer: error code and message in the rejected result."""
    harness = Harness()
    bad = {"command": "agent.speak", "id": "why-1", "agent_id": "a", "text": 7}
    asyncio.run(harness.feed(msgspec.json.encode(bad)))
    (record,) = harness.broker.records(RESULTS)
    result = msgspec.json.decode(record.value or b"", type=ResultEvent)
    assert result.error == ErrorInfo(
        code="invalid_command", message="$.text: expected str, got int"
    )
