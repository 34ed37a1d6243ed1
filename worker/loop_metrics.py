"""Counters and histograms for the per-command path: updated without locks, read at scrape time.

prometheus-client guards every update with a thread lock and walks every histogram bucket, which
is right for threaded programs and costs the worker about a microsecond per update, several
times per command. The worker updates its metrics from one event loop, and `/metrics` is served
by that same loop, so an update here is a plain addition (and a bisection for a histogram). The
families are prometheus-client collectors: they are registered on the same registry and exposed
in the same format as the library's own types.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import cast

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# the library's own bucket label format (`4.194304e+06`, `+Inf`); it is not annotated
_bucket_label = cast(Callable[[float], str], floatToGoString)


class CounterChild:
    """One label combination of a `LoopCounter`."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add `amount` (positive)."""
        self.value += amount


class HistogramChild:
    """One label combination of a `LoopHistogram`."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count `value` in the first bucket whose upper bound is at least `value`."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class _Family(Collector):
    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = list(labelnames)
        registry.register(self)


class LoopCounter(_Family):
    """A labelled counter, exposed as `<name>_total`."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self._children: dict[tuple[str, ...], CounterChild] = {}
        super().__init__(name, documentation, labelnames, registry)

    def labels(self, *values: str) -> CounterChild:
        """The child for these label values (made on first use)."""
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = CounterChild()
        return child

    def collect(self) -> Iterator[Metric]:
        """The family with one sample per label combination."""
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for values, child in self._children.items():
            family.add_metric(list(values), child.value)
        yield family


class LoopHistogram(_Family):
    """A labelled histogram with fixed buckets."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        *,
        buckets: Sequence[float],
    ) -> None:
        self._bounds = tuple(sorted(buckets))
        self._children: dict[tuple[str, ...], HistogramChild] = {}
        super().__init__(name, documentation, labelnames, registry)

    def labels(self, *values: str) -> HistogramChild:
        """The child for these label values (made on first use)."""
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = HistogramChild(self._bounds)
        return child

    def collect(self) -> Iterator[Metric]:
        """The family with cumulative buckets, sum and count per label combination."""
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for values, child in self._children.items():
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip((*self._bounds, float("inf")), child.counts, strict=True):
                cumulative += count
                buckets.append((_bucket_label(bound), cumulative))
            family.add_metric(list(values), buckets, child.sum)
        yield family
