"""The lock-free counter and histogram expose exactly what prometheus-client's would."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram

from worker.loop_metrics import LoopCounter, LoopHistogram

BUCKETS = (0.005, 0.05, 0.5, 5.0, 1_048_576.0)


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample but the `_created` timestamps, which only the library's types have."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.floats(min_value=0, max_value=2e6, allow_nan=False) | st.sampled_from(BUCKETS),
        ),
        max_size=40,
    )
)
def test_the_same_observations_give_the_same_samples(
    observations: list[tuple[str, float]],
) -> None:
    """Bucket boundaries (`le` is inclusive), sums, counts and label values all agree."""
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    histogram = LoopHistogram("h_seconds", "doc", ["kind"], ours, buckets=BUCKETS)
    counter = LoopCounter("c", "doc", ["kind"], ours)
    reference = Histogram("h_seconds", "doc", ["kind"], registry=theirs, buckets=BUCKETS)
    reference_counter = Counter("c", "doc", ["kind"], registry=theirs)
    for kind, value in observations:
        histogram.labels(kind).observe(value)
        reference.labels(kind).observe(value)
        counter.labels(kind).inc(value)
        reference_counter.labels(kind).inc(value)
    assert samples(ours) == samples(theirs)
