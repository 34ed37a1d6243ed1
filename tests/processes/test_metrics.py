"""The pod's /metrics merged from its worker processes: sums, gauges per metric, restarts."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.parser import text_string_to_metric_families as text_families

from worker.metrics import POD_MERGE, Metrics
from worker.processes.metrics import PodMetrics, parse
from worker.processes.ops import OPENMETRICS

openmetrics, _ = choose_encoder(OPENMETRICS)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def process(completed: int, *, in_flight: int = 0, agents: int = 0, e2e: float = 0.2) -> str:
    """The OpenMetrics exposition of a worker process that did this much."""
    metrics = Metrics(CollectorRegistry())
    metrics.completed("agent.speak", "succeeded").inc(completed)
    metrics.e2e("agent.speak").observe(e2e)
    metrics.in_flight.set(in_flight)
    metrics.in_flight_limit.set(1000)
    metrics.agents_tracked.set(agents)
    return openmetrics(metrics.registry).decode()


def samples(pod: PodMetrics) -> Samples:
    """The pod's samples as Prometheus reads them (text format)."""
    text = generate_latest(pod).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


COMPLETED = ("convoai_commands_completed_total", {"command": "agent.speak", "outcome": "succeeded"})


@pytest.fixture
def parent() -> Metrics:
    """The parent's own registry: the webhooks it refused, its restarts of processes."""
    metrics = Metrics(CollectorRegistry())
    metrics.webhook_events.labels("unknown", "bad_signature").inc(2)
    metrics.webhooks_in_flight_limit.set(32)
    return metrics


def test_counters_and_histograms_are_summed_and_gauges_merged_per_metric(parent):
    """Commands completed and the e2e histogram add up over the processes; commands in flight
    and the limit too; agents tracked (every process follows the whole state topic) is the
    largest; the parent's own series are part of the whole."""
    pod = PodMetrics(parent.registry)
    pod.scraped(0, 10, process(3, in_flight=4, agents=7, e2e=0.2))
    pod.scraped(1, 11, process(5, in_flight=6, agents=7, e2e=3.0))
    found = samples(pod)
    assert value(found, COMPLETED[0], **COMPLETED[1]) == 8
    assert value(found, "convoai_commands_in_flight") == 10
    assert value(found, "convoai_commands_in_flight_limit") == 2000
    assert value(found, "convoai_agents_tracked") == 7
    e2e = "convoai_command_e2e_seconds"
    assert value(found, f"{e2e}_count", command="agent.speak") == 2
    assert value(found, f"{e2e}_sum", command="agent.speak") == pytest.approx(3.2)
    assert value(found, f"{e2e}_bucket", command="agent.speak", le="0.25") == 1
    assert value(found, f"{e2e}_bucket", command="agent.speak", le="+Inf") == 2
    events = "convoai_webhook_events_total"
    assert value(found, events, event_type="unknown", verdict="bad_signature") == 2
    assert value(found, "convoai_webhooks_in_flight_limit") == 32


def test_a_restarted_process_never_makes_a_counter_go_down(parent):
    """Process 1 restarts (a new pid) and begins counting from 0: what the old one counted up to
    its last scrape stays in the sums, and its gauges are gone with it."""
    pod = PodMetrics(parent.registry)
    pod.scraped(0, 10, process(3))
    pod.scraped(1, 11, process(5, in_flight=6))
    pod.scraped(1, 12, process(1, in_flight=2))
    found = samples(pod)
    assert value(found, COMPLETED[0], **COMPLETED[1]) == 3 + 5 + 1
    assert value(found, "convoai_commands_in_flight") == 2
    pod.gone(1)  # exited; not yet running again
    found = samples(pod)
    assert value(found, COMPLETED[0], **COMPLETED[1]) == 3 + 5 + 1
    assert value(found, "convoai_commands_in_flight") == 0


def test_a_process_that_did_not_answer_a_scrape_keeps_its_figures(parent):
    """A failed scrape of a process still running (same pid) changes nothing; one that names
    another pid retires the figures of the process that is gone."""
    pod = PodMetrics(parent.registry)
    pod.scraped(0, 10, process(3))
    pod.gone(0, unless=10)
    assert value(samples(pod), COMPLETED[0], **COMPLETED[1]) == 3
    pod.gone(0, unless=11)
    pod.scraped(0, 11, process(1))
    assert value(samples(pod), COMPLETED[0], **COMPLETED[1]) == 4


def test_both_formats_are_served(parent):
    """The merged families encode as OpenMetrics (what Prometheus asks for first) too."""
    pod = PodMetrics(parent.registry)
    pod.scraped(0, 10, process(3))
    families = {f.name: f for f in parse(openmetrics(pod).decode())}
    assert families["convoai_commands_completed"].type == "counter"


def test_every_gauge_the_worker_exposes_says_how_a_pod_merges_it():
    """POD_MERGE names every gauge of a worker's /metrics (its own and the process and
    platform collectors'), and nothing else: a new gauge must choose."""
    metrics = Metrics(CollectorRegistry())
    gauges = {family.name for family in metrics.registry.collect() if family.type == "gauge"}
    assert set(POD_MERGE) == gauges
