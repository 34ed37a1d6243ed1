"""Prometheus metrics of the worker, registered on an injected registry.

Every metric the dashboard and alert rules use is defined here and nowhere else, so
`METRIC_NAMES` is the contract that `helm/convoai-worker/files/*` are tested against. Labels are
bounded sets (command type, outcome, operation, status class, partition, error class), never ids.
The process, platform and GC collectors add `process_*` and `python_*` series.
"""

from __future__ import annotations

import functools
import platform
from typing import Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)

from worker import __version__
from worker.loop_metrics import LoopCounter, LoopHistogram

# End-to-end includes queueing behind earlier commands of the same key, hence the long tail.
E2E_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# One HTTP attempt against the ConvoAI API: tens of ms normally, the client timeout at worst.
API_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30)
# A produce request with acks=all: milliseconds normally, the request timeout when a leader moves.
PRODUCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# Records from a few hundred bytes (a speak) to CONVOAI_MAX_RECORD_BYTES (1 MB by default).
SIZE_BUCKETS = (256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304)


class Metrics:
    """All worker metrics; one instance per process (tests create one per registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # process_* (CPU, memory, file descriptors), python_info and python_gc_* series
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.build_info = Gauge(
            "convoai_build_info", "Build information.", ["version", "python"], registry=registry
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.commands_received = LoopCounter(
            "convoai_commands_received",
            "Command records consumed, by command type ('invalid' when undecodable).",
            ["command"],
            registry=registry,
        )
        self.commands_completed = LoopCounter(
            "convoai_commands_completed",
            "Final results acknowledged by Kafka, by command type and outcome.",
            ["command", "outcome"],
            registry=registry,
        )
        self.commands_deduplicated = Counter(
            "convoai_commands_deduplicated",
            "Redelivered commands whose final result had already been published.",
            ["command"],
            registry=registry,
        )
        self.commands_expired = Counter(
            "convoai_commands_expired",
            "Commands not sent to the API because they were past expires_at.",
            ["command"],
            registry=registry,
        )
        self.command_e2e = LoopHistogram(
            "convoai_command_e2e_seconds",
            "Seconds from the command record's timestamp to its result being acknowledged.",
            ["command"],
            buckets=E2E_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "convoai_commands_in_flight", "Commands being executed.", registry=registry
        )
        self.in_flight_limit = Gauge(
            "convoai_commands_in_flight_limit",
            "Configured bound on commands executed at once.",
            registry=registry,
        )
        self.partition_paused = Gauge(
            "convoai_partition_paused",
            "1 while a partition is paused: its buffer is full, the worker's byte budget is "
            "used up, its offset map nears the metadata limit, or it is still being opened.",
            ["topic", "partition"],
            registry=registry,
        )
        self.lag_records = Gauge(
            "convoai_consumer_lag_records",
            "High watermark minus committed offset.",
            ["topic", "partition"],
            registry=registry,
        )
        self.lag_seconds = Gauge(
            "convoai_consumer_lag_seconds",
            "Age of the oldest record that is consumed but not yet committed.",
            ["topic", "partition"],
            registry=registry,
        )
        self.commits = Counter(
            "convoai_commits", "Offset commits, by result.", ["result"], registry=registry
        )
        self.rebalances = Counter(
            "convoai_rebalances",
            "Partition assignment changes, by kind (assigned, revoked, lost).",
            ["kind"],
            registry=registry,
        )
        self.dlq_records = Counter(
            "convoai_dlq_records",
            "Records written to the dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )
        self.events_published = LoopCounter(
            "convoai_events_published",
            "Records acknowledged by Kafka on an output topic.",
            ["topic"],
            registry=registry,
        )
        self.produce_errors = Counter(
            "convoai_produce_errors",
            "Output records not delivered, by topic, kind (transient: sent again; rejected: "
            "refused for good and replaced or dead-lettered) and error class.",
            ["topic", "kind", "error"],
            registry=registry,
        )
        self.produce_latency = LoopHistogram(
            "convoai_produce_seconds",
            "Seconds from handing an output record to the producer to Kafka's acknowledgement.",
            ["topic"],
            buckets=PRODUCE_BUCKETS,
            registry=registry,
        )
        self.record_bytes = LoopHistogram(
            "convoai_record_bytes",
            "Bytes of the values of command records consumed and output records produced.",
            ["topic"],
            buckets=SIZE_BUCKETS,
            registry=registry,
        )
        self.offset_map_overflows = Counter(
            "convoai_offset_map_overflows",
            "Times a partition's finished-offset map outgrew the metadata limit (only its "
            "lowest offsets are committed meanwhile; a new owner may run the others again).",
            registry=registry,
        )
        self.records_skipped = Counter(
            "convoai_records_skipped",
            "Records not processed because the offset map says a previous owner finished them.",
            registry=registry,
        )
        self.commands_interrupted = Counter(
            "convoai_commands_interrupted",
            "Commands interrupted when their partition was released, by what became of them "
            "(unknown: may have reached the API, finished as unknown; redelivered: left for "
            "the next owner; killed: still running at the end of the release's deadlines, "
            "left for the next owner, which may repeat its call).",
            ["kind"],
            registry=registry,
        )
        self.background_task_restarts = Counter(
            "convoai_background_task_restarts",
            "Background tasks (committer, followers, reconciler, loop monitor) that failed "
            "and were started again.",
            ["task"],
            registry=registry,
        )
        self.loop_lag = Gauge(
            "convoai_event_loop_lag_seconds",
            "Last measured delay of the event loop in running a scheduled callback.",
            registry=registry,
        )
        self.agents_tracked = Gauge(
            "convoai_agents_tracked",
            "Agents in the worker's directory: live ones and those ended within the retention.",
            registry=registry,
        )
        self.agent_state_upkeep = Counter(
            "convoai_agent_state_upkeep",
            "Records the worker wrote to keep the agent-state topic right and bounded, by kind "
            "(repair: the newest state again after an older one landed last; tombstone: an "
            "agent forgotten after the retention).",
            ["kind"],
            registry=registry,
        )

        self._api(registry)
        self._lifecycle(registry)
        self._webhooks(registry)

        # The per-command paths update the Loop* types (no lock; see worker.loop_metrics) through
        # these cached lookups (label sets are small and bounded, so the caches are too).
        self.received = functools.cache(self.commands_received.labels)
        self.completed = functools.cache(self.commands_completed.labels)
        self.deduplicated = functools.cache(self.commands_deduplicated.labels)
        self.expired = functools.cache(self.commands_expired.labels)
        self.e2e = functools.cache(self.command_e2e.labels)
        self.published = functools.cache(self.events_published.labels)
        self.dead_lettered = functools.cache(self.dlq_records.labels)
        self.produce_failed = functools.cache(self.produce_errors.labels)
        self.produced_in = functools.cache(self.produce_latency.labels)
        self.record_size = functools.cache(self.record_bytes.labels)
        self.task_restarts = functools.cache(self.background_task_restarts.labels)
        self.interrupted = functools.cache(self.commands_interrupted.labels)
        self.state_upkeep = functools.cache(self.agent_state_upkeep.labels)
        self.internal_error = functools.cache(self.internal_errors.labels)
        self._request = functools.cache(self.api_request.labels)
        self._retry = functools.cache(self.api_retries.labels)

    def _api(self, registry: CollectorRegistry) -> None:
        """Metrics of the requests to the ConvoAI API."""
        self.api_request = LoopHistogram(
            "convoai_api_request_seconds",
            "Seconds per HTTP attempt against the ConvoAI API.",
            ["operation", "status_class"],
            buckets=API_BUCKETS,
            registry=registry,
        )
        self.api_retries = Counter(
            "convoai_api_retries",
            "API attempts that will be retried, by operation and reason.",
            ["operation", "reason"],
            registry=registry,
        )
        self.api_unreadable = Counter(
            "convoai_api_unreadable_responses",
            "2xx answers whose body is not JSON, by operation: the operation ran and its result "
            "carries the body as text.",
            ["operation"],
            registry=registry,
        )

    def _lifecycle(self, registry: CollectorRegistry) -> None:
        """Metrics of partitions' lifecycle, memory bound and contained failures."""
        self.internal_errors = Counter(
            "convoai_internal_errors",
            "Records whose processing raised an unexpected exception (a bug): each got a failed "
            "result with code internal_error and a dead letter.",
            ["command"],
            registry=registry,
        )
        self.buffered_bytes = Gauge(
            "convoai_buffered_bytes",
            "Bytes of consumed records not yet finished (partitions pause at the budget).",
            registry=registry,
        )
        self.buffer_limit_bytes = Gauge(
            "convoai_buffer_limit_bytes",
            "Configured budget of buffered record bytes (CONVOAI_BUFFER_MAX_BYTES).",
            registry=registry,
        )
        self.partition_opens = Counter(
            "convoai_partition_opens",
            "Assigned partitions opened for processing, by result (ok; retried: a lookup or the "
            "dedupe catch-up failed once and was tried again; failed: given up, the member "
            "leaves the group).",
            ["result"],
            registry=registry,
        )
        self.worker_process_restarts = Counter(
            "convoai_worker_process_restarts",
            "Worker processes of a pod (--processes) that exited and were started again, by "
            "process index.",
            ["process"],
            registry=registry,
        )
        self.worker_restarts = functools.cache(self.worker_process_restarts.labels)
        self.releases = LoopHistogram(
            "convoai_release_seconds",
            "Seconds to release partitions (finish, interrupt, commit), by why (revoked, "
            "shutdown) and how it ended (finished, interrupted, killed).",
            ["why", "ending"],
            buckets=E2E_BUCKETS,
            registry=registry,
        )

    def _webhooks(self, registry: CollectorRegistry) -> None:
        """Metrics of the Agora NCS callbacks the ops server receives."""
        self.webhook_events = Counter(
            "convoai_webhook_events",
            "Agora NCS callbacks received, by event type and verdict.",
            ["event_type", "verdict"],
            registry=registry,
        )
        self.webhooks_in_flight = Gauge(
            "convoai_webhooks_in_flight",
            "NCS callbacks being received or answered now.",
            registry=registry,
        )
        self.webhooks_in_flight_limit = Gauge(
            "convoai_webhooks_in_flight_limit",
            "CONVOAI_WEBHOOK_MAX_CONCURRENT: callbacks beyond it are answered 503 at once.",
            registry=registry,
        )

    # ApiObserver protocol (worker.api.observer): the API client reports through these.
    def request_finished(self, operation: str, status_class: str, seconds: float) -> None:
        """Record one HTTP attempt."""
        self._request(operation, status_class).observe(seconds)

    def retry_scheduled(self, operation: str, reason: str, delay: float) -> None:
        """Record that an attempt will be retried (the delay is not a metric)."""
        del delay
        self._retry(operation, reason).inc()

    def unreadable_response(self, operation: str) -> None:
        """Count a 2xx whose body is not JSON."""
        self.api_unreadable.labels(operation).inc()


Merge = Literal["sum", "max", "min"]

# How the parent of several worker processes (`convoai-worker run --processes N`) shows a gauge
# on the pod's one /metrics (`worker.processes.metrics`), like prometheus-client's
# `multiprocess_mode`: what each process reports of its own share is summed; what every process
# sees whole, or where the worst process is the pod's state, is the maximum. Counters and
# histograms are always summed (`_created` is the earliest). Every gauge the worker exposes is
# listed (tests/processes check it); the parent's own series (webhooks it received, its
# process_*) are one more process in these sums.
POD_MERGE: dict[str, Merge] = {
    "convoai_build_info": "max",  # 1 in every process
    "convoai_commands_in_flight": "sum",  # each process runs its own commands
    "convoai_commands_in_flight_limit": "sum",  # so the pod's limit is the sum of theirs
    # a partition is one process's: only its owner reports it (a revoked one is removed)
    "convoai_partition_paused": "max",
    "convoai_consumer_lag_records": "max",
    "convoai_consumer_lag_seconds": "max",
    "convoai_event_loop_lag_seconds": "max",  # the most blocked loop
    "convoai_agents_tracked": "max",  # every process follows the whole agent-state topic
    "convoai_buffered_bytes": "sum",  # each process buffers its own partitions' records
    "convoai_buffer_limit_bytes": "sum",
    # the parent receives every callback and hands it to one process: the parent's count
    "convoai_webhooks_in_flight": "max",
    "convoai_webhooks_in_flight_limit": "max",  # the parent's limit is the pod's
    "process_resident_memory_bytes": "sum",  # the pod's processes together
    "process_virtual_memory_bytes": "sum",
    "process_open_fds": "sum",
    "process_max_fds": "max",  # a limit per process
    "process_start_time_seconds": "min",  # when the pod's first process (the parent) started
    "python_info": "max",  # 1 in every process
}


def exported_names(metrics: Metrics) -> frozenset[str]:
    """Names as they appear on /metrics: counters with `_total`, histograms without suffix."""
    names: set[str] = set()
    for family in metrics.registry.collect():
        names.add(family.name + "_total" if family.type == "counter" else family.name)
    return frozenset(names)


# What dashboards and alert rules may reference; derived, so it cannot drift from the code above.
METRIC_NAMES = exported_names(Metrics(CollectorRegistry()))
