"""OpenTelemetry tracing (`CONVOAI_TRACING=true`): the producer's trace continues through the
command's span, its API attempts, and its result and state events (the SDK's in-memory
exporter)."""

from __future__ import annotations

import msgspec
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from devtools.workload import agent_properties
from tests.component.harness import ScriptedApi, result_ids, running, until
from worker import app
from worker.api.errors import ApiStatusError
from worker.kafka.memory import InMemoryBroker
from worker.settings import Settings
from worker.tracing import CommandTracer, build_tracer

COMMANDS = "convoai.commands"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PRODUCER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PRODUCER_SPAN}-01".encode()


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """Workers of this test trace into memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(app, "build_tracer", lambda _: CommandTracer(provider))
    return exporter


def traceparent(headers: tuple[tuple[str, bytes], ...]) -> str:
    return dict(headers)["traceparent"].decode()


async def test_a_command_continues_its_producers_trace(
    broker: InMemoryBroker, api: ScriptedApi, exported: InMemorySpanExporter
) -> None:
    """A start whose first attempt gets a 503: the command's CONSUMER span is a child of the
    producer's span; each attempt is a CLIENT span under it, the retried one saying why; the
    result and the agent's state event carry the command span's context."""
    api.failures["join"] = [ApiStatusError("agent.start", 503)]
    start = {
        "command": "agent.start",
        "id": "t-1",
        "name": "traced",
        "properties": agent_properties("traced"),
    }
    broker.produce(
        COMMANDS, msgspec.json.encode(start), key=b"traced", headers=[("traceparent", TRACEPARENT)]
    )
    async with running(broker, api, tracing=True):
        await until(lambda: "t-1" in result_ids(broker), "the result")
    spans = exported.get_finished_spans()
    (command,) = [s for s in spans if s.kind == SpanKind.CONSUMER]
    attempts = sorted(
        (s for s in spans if s.kind == SpanKind.CLIENT), key=lambda s: s.start_time or 0
    )
    assert command.name == f"process {COMMANDS}"
    assert format(command.context.trace_id, "032x") == TRACE_ID
    assert command.parent is not None
    assert format(command.parent.span_id, "016x") == PRODUCER_SPAN
    assert command.attributes is not None
    assert command.attributes["convoai.command"] == "agent.start"
    assert command.attributes["messaging.message.id"] == "t-1"
    assert command.attributes["convoai.outcome"] == "succeeded"
    assert [(s.name, (s.attributes or {}).get("convoai.status_class")) for s in attempts] == [
        ("agent.start", "5xx"),
        ("agent.start", "2xx"),
    ]
    assert (attempts[0].attributes or {}).get("convoai.retry.reason") == "server_error"
    assert all(
        s.parent is not None and s.parent.span_id == command.context.span_id for s in attempts
    )
    ours = f"00-{TRACE_ID}-{command.context.span_id:016x}-01"
    (result,) = broker.records("convoai.results")
    assert traceparent(result.headers) == ours
    states = broker.records("convoai.agent-state")
    assert states
    assert {traceparent(state.headers) for state in states} == {ours}


async def test_untraced_workers_add_no_trace_headers(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """Tracing off (the default): no span, no header added to the outputs."""
    broker.produce(
        COMMANDS,
        msgspec.json.encode({"command": "agent.get", "id": "g-1", "agent_id": "g-1"}),
        key=b"g-1",
        headers=[("traceparent", TRACEPARENT)],
    )
    async with running(broker, api):
        await until(lambda: "g-1" in result_ids(broker), "the result")
    (result,) = broker.records("convoai.results")
    assert "traceparent" not in dict(result.headers)
    assert build_tracer(Settings()) is None


def test_no_exporter_keeps_the_spans_to_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """`OTEL_TRACES_EXPORTER=none` traces without exporting (what the benchmark measures)."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    tracer = build_tracer(Settings(tracing=True))
    assert tracer is not None
    tracer.shutdown()
