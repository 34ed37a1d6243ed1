"""OpenTelemetry tracing: a producer's trace goes on through the worker to the API and back out.

Off by default; `CONVOAI_TRACING=true` with the `otel` extra (`pip install
'convoai-worker[otel]'`). A command record's `traceparent` / `tracestate` headers (W3C trace
context, as the CloudEvents distributed-tracing extension carries it on Kafka) are the parent of
a CONSUMER span per command; each API attempt is a CLIENT span under it (operation, status
class, and the retry reason when the attempt is retried); the command's result and agent-state
events carry the command span's context in their own headers, so a consumer's trace continues
from them. Export is OTLP over HTTP, configured by the standard `OTEL_*` variables
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, ...); `OTEL_TRACES_EXPORTER=console`
prints spans, `none` keeps the spans but exports none.

API attempts are reported through the `ApiObserver` calls the metrics already receive: the
command's span is found in a context variable of its task, so the execution code knows nothing
of tracing, and the worker pays one attribute check per record when tracing is off.
"""

from __future__ import annotations

import contextvars
import importlib.util
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from worker.api.observer import ApiObserver
from worker.kafka.ports import Record
from worker.settings import Settings, SettingsError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span

TRACE_HEADERS = ("traceparent", "tracestate")
EXTRA = "convoai-worker[otel]"

_current: contextvars.ContextVar[CommandSpan | None] = contextvars.ContextVar(
    "convoai_command_span", default=None
)


class CommandSpan:
    """The span of one command, and the attempt span waiting to learn whether it is retried."""

    __slots__ = ("_pending", "_token", "_tracer", "span")

    def __init__(self, tracer: CommandTracer, span: Span) -> None:
        self._tracer = tracer
        self.span = span
        self._pending: Span | None = None
        # the task's current command, for the attempts the execution reports meanwhile
        self._token = _current.set(self)

    def describe(self, command: str, command_id: str) -> None:
        """What the record turned out to be."""
        self.span.set_attribute("convoai.command", command)
        self.span.set_attribute("messaging.message.id", command_id)

    def headers(self) -> list[tuple[str, bytes]]:
        """The command span's context as Kafka headers, for the command's outputs."""
        return self._tracer.inject(self.span)

    def attempt(self, operation: str, status_class: str, seconds: float) -> None:
        """One API attempt that ended now after `seconds`."""
        self._close_pending()
        end = time.time_ns()
        self._pending = self._tracer.attempt_span(
            self.span, operation, status_class, start=end - int(seconds * 1e9)
        )

    def retried(self, reason: str, delay: float) -> None:
        """The last attempt is retried after `delay` seconds because of `reason`."""
        if self._pending is not None:
            self._pending.set_attribute("convoai.retry.reason", reason)
            self._pending.set_attribute("convoai.retry.delay_s", delay)
            self._close_pending()

    def end(self, outcome: str | None) -> None:
        """The command is done (`outcome` None: it did not finish here)."""
        self._close_pending()
        if outcome is not None:
            self.span.set_attribute("convoai.outcome", outcome)
        self.span.end()
        _current.reset(self._token)

    def _close_pending(self) -> None:
        if self._pending is not None:
            self._pending.end()
            self._pending = None


class CommandTracer:
    """Starts command spans (the processor) and attempt spans (through `ApiObserver`)."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry import trace  # noqa: PLC0415 - the optional extra
        from opentelemetry.trace.propagation.tracecontext import (  # noqa: PLC0415
            TraceContextTextMapPropagator,
        )

        self._trace = trace
        self._tracer = provider.get_tracer("convoai-worker")
        self._propagator = TraceContextTextMapPropagator()
        self.provider = provider

    def start(self, record: Record) -> CommandSpan:
        """The span of the command in `record`, child of the trace its headers carry."""
        carrier = {
            name: value.decode("latin-1")
            for name, value in record.headers
            if name in TRACE_HEADERS and value
        }
        parent = self._propagator.extract(carrier) if carrier else None
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
        }
        span = self._tracer.start_span(
            f"process {record.topic}",
            context=parent,
            kind=self._trace.SpanKind.CONSUMER,
            attributes=attributes,
        )
        return CommandSpan(self, span)

    def attempt_span(self, parent: Span, operation: str, status_class: str, *, start: int) -> Span:
        """A CLIENT span for one API attempt that started at `start` (ns) and ended now."""
        span = self._tracer.start_span(
            operation,
            context=self._trace.set_span_in_context(parent),
            kind=self._trace.SpanKind.CLIENT,
            attributes={"convoai.operation": operation, "convoai.status_class": status_class},
            start_time=start,
        )
        if status_class not in ("2xx",):
            span.set_status(self._trace.StatusCode.ERROR)
        return span

    def inject(self, span: Span) -> list[tuple[str, bytes]]:
        """`traceparent` (and `tracestate`) of `span`."""
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=self._trace.set_span_in_context(span))
        return [(name, value.encode()) for name, value in carrier.items()]

    def shutdown(self) -> None:
        """Export what is left (at the end of the worker)."""
        self.provider.shutdown()


class TracingObserver:
    """An `ApiObserver` that also turns attempts into spans of the current command."""

    def __init__(self, inner: ApiObserver) -> None:
        self._inner = inner

    def request_finished(self, operation: str, status_class: str, seconds: float) -> None:
        """Forward, and add the attempt's span to the command's."""
        self._inner.request_finished(operation, status_class, seconds)
        scope = _current.get()
        if scope is not None:
            scope.attempt(operation, status_class, seconds)

    def retry_scheduled(self, operation: str, reason: str, delay: float) -> None:
        """Forward, and mark the last attempt's span as retried."""
        self._inner.retry_scheduled(operation, reason, delay)
        scope = _current.get()
        if scope is not None:
            scope.retried(reason, delay)

    def unreadable_response(self, operation: str) -> None:
        """Forward: a 2xx whose body was not JSON is counted, its span says nothing more."""
        self._inner.unreadable_response(operation)


def require_extra(settings: Settings) -> None:
    """Refuse `CONVOAI_TRACING=true` where the otel extra is not installed (at load, with every
    other setting, rather than when the worker starts)."""
    if settings.tracing and not _sdk_installed():
        raise SettingsError(f"CONVOAI_TRACING=true needs the otel extra: install {EXTRA!r}")


def _sdk_installed() -> bool:
    try:
        return importlib.util.find_spec("opentelemetry.sdk") is not None
    except ModuleNotFoundError:  # not even the opentelemetry namespace
        return False


def build_tracer(settings: Settings) -> CommandTracer | None:
    """The tracer `CONVOAI_TRACING` asks for (None when off), exporting as `OTEL_*` says."""
    if not settings.tracing:
        return None
    require_extra(settings)
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415 - the optional extra
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    provider = TracerProvider(
        resource=Resource.create({"service.name": "convoai-worker"})  # OTEL_SERVICE_NAME wins
    )
    exporter: SpanExporter | None
    kind = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if kind == "none":
        exporter = None
    elif kind == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        exporter = OTLPSpanExporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return CommandTracer(provider)


def trace_headers() -> Sequence[tuple[str, bytes]]:
    """The trace headers the outputs of the task's current command carry (none when it is not
    traced)."""
    scope = _current.get()
    return scope.headers() if scope is not None else ()
