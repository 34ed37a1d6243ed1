"""The pod's one /metrics: the worker processes' series added up as if one process had them.

At each scrape the parent asks every process for its metrics (OpenMetrics, over the process's
private socket) and merges them with its own registry (the webhooks it received, its restarts
of processes, its `process_*`): counters and histograms are summed, gauges as `POD_MERGE` says
(`worker.metrics`). Each process keeps its fast lock-free metrics (`worker.loop_metrics`) and
the standard `process_*`/`python_*` collectors, which prometheus-client's multiprocess mode
would give up; and no directory of metric files has to be written, kept and cleaned.

A process that exits takes its counters with it, which would make the pod's sums drop and
Prometheus read a counter reset. So the last values scraped from a process that is gone are
kept (`retired`) and added to the sums from then on: the pod's counters never go down. What the
process counted after that last scrape is lost, as it is for a single worker that crashes.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator
from typing import cast

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from worker.metrics import POD_MERGE, Merge

# the library's OpenMetrics parser (it is not annotated)
parse = cast(Callable[[str], Iterator[Metric]], text_string_to_metric_families)
CUMULATIVE = frozenset({"counter", "histogram", "summary"})
SampleKey = tuple[str, tuple[tuple[str, str], ...]]
_COMBINE: dict[Merge, Callable[[float, float], float]] = {
    "sum": operator.add,
    "max": max,
    "min": min,
}


class PodMetrics(Collector):
    """The merged families of the parent and its processes (`collect`, for a registry)."""

    def __init__(self, own: Collector) -> None:
        self._own = own
        self._current: dict[int, tuple[int, list[Metric]]] = {}  # index -> (pid, families)
        self._retired: list[Metric] = []

    def scraped(self, index: int, pid: int, text: str) -> None:
        """The exposition just read from process `index` (running as `pid`)."""
        self.gone(index, unless=pid)
        self._current[index] = (pid, list(parse(text)))

    def gone(self, index: int, *, unless: int | None = None) -> None:
        """Process `index` is not running (or, with `unless`, runs as another pid than the
        one last scraped): keep what it counted."""
        last = self._current.get(index)
        if last is None or last[0] == unless:
            return
        del self._current[index]
        self._retired = merge([self._retired, _cumulative(last[1])])

    def collect(self) -> Iterator[Metric]:
        """The pod's families."""
        sources = [list(self._own.collect()), *(f for _, f in self._current.values())]
        yield from merge([*sources, self._retired])


def merge(sources: Iterable[Iterable[Metric]]) -> list[Metric]:
    """The families of several processes as one: samples with the same name and labels are
    combined (counters and histograms summed, gauges per `POD_MERGE`)."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[SampleKey, float]] = {}
    for source in sources:
        for family in source:
            if family.name not in families:
                families[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
                values[family.name] = {}
            combined = values[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                seen = combined.get(key)
                if seen is None:
                    combined[key] = sample.value
                else:
                    combined[key] = _COMBINE[_merge_of(family, sample.name)](seen, sample.value)
    for name, family in families.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
    return list(families.values())


def _merge_of(family: Metric, sample: str) -> Merge:
    """How two processes' values of a sample make the pod's."""
    if sample.endswith("_created"):
        return "min"
    if family.type in CUMULATIVE:
        return "sum"
    return POD_MERGE.get(family.name, "max")


def _cumulative(families: list[Metric]) -> list[Metric]:
    """Only what keeps counting after its process is gone: counters and histograms."""
    kept = []
    for family in families:
        if family.type not in CUMULATIVE:
            continue
        copy = Metric(family.name, family.documentation, family.type, family.unit)
        copy.samples = [s for s in family.samples if not s.name.endswith("_created")]
        kept.append(copy)
    return kept
