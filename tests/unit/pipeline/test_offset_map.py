"""The offset map written into commit metadata: exact, compact, and refused when foreign."""

from __future__ import annotations

import base64
import random
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.pipeline import offset_map
from worker.pipeline.offset_map import OffsetMapError

BUDGET = 4096  # the broker's default offset.metadata.max.bytes


@given(
    position=st.integers(min_value=0, max_value=2**62),
    finished=st.sets(st.integers(min_value=1, max_value=5000), max_size=600),
)
def test_round_trip(position: int, finished: set[int]) -> None:
    """Whatever is encoded decodes to the same finished offsets."""
    above = {position + delta for delta in finished}
    metadata = offset_map.encode(position, above, BUDGET)
    assert metadata is not None
    assert offset_map.decode(position, metadata) == above


def test_nothing_above_the_position_is_empty_metadata() -> None:
    """Offsets at or below the position are committed already and left out."""
    assert offset_map.encode(10, {3, 10}, BUDGET) == ""
    assert offset_map.decode(10, "") == set()


def test_capacity_within_the_default_metadata_limit() -> None:
    """Any pattern over 24,000 offsets fits; long runs with few gaps fit far beyond that."""
    rng = random.Random(7)
    scattered = {1 + i for i in range(24_000) if rng.random() < 0.5}
    metadata = offset_map.encode(0, scattered, BUDGET)
    assert metadata is not None
    assert len(metadata) <= BUDGET
    runs = {i for i in range(1, 1_000_000) if i % 50_000}
    assert offset_map.encode(0, runs, BUDGET) is not None
    wider = {1 + i for i in range(30_000) if rng.random() < 0.5}
    assert offset_map.encode(0, wider, BUDGET) is None


def test_a_map_for_another_position_is_refused() -> None:
    """An operator resetting the group's offsets must not make the worker skip records."""
    metadata = offset_map.encode(100, {105}, BUDGET)
    assert metadata is not None
    with pytest.raises(OffsetMapError, match="position 100, committed position is 50"):
        offset_map.decode(50, metadata)


@pytest.mark.parametrize(
    "metadata",
    [
        "some other tool's metadata",
        "om1:7:!!!not-base64",
        "om1:7:" + base64.urlsafe_b64encode(b"not zlib").decode(),
        "om1:7:" + base64.urlsafe_b64encode(zlib.compress(b"\xff" * (1 << 18))).decode(),
    ],
)
def test_unreadable_or_oversized_maps_are_refused(metadata: str) -> None:
    """Foreign, corrupt or implausibly large metadata raises instead of skipping records."""
    with pytest.raises(OffsetMapError):
        offset_map.decode(7, metadata)


# Maps as this format writes them: a worker of a later version must read what an earlier one
# committed (a rolling upgrade), so these strings never change meaning.
WRITTEN = [
    (41, "om1:41:eNpjYwQAAA8ACA==", {43, 44, 50}),
    (0, "om1:0:eNr7938AASMAIpJ8hA==", set(range(2, 1002))),
    (1000, "om1:1000:eNpjZGRkGCjQAAACcQCE", {1001, 1009, 1017, 2000}),
]


@pytest.mark.parametrize(("position", "metadata", "finished"), WRITTEN)
def test_the_format_reads_and_writes_fixed_examples(
    position: int, metadata: str, finished: set[int]
) -> None:
    """Bit i of byte j stands for `position + 1 + 8j + i`, zlib-compressed, URL-safe base64."""
    assert offset_map.decode(position, metadata) == finished
    assert offset_map.encode(position, finished, BUDGET) == metadata


def test_encode_refuses_what_decode_would_refuse() -> None:
    """A map spanning more offsets than `decode` accepts is not written, whatever the budget."""
    assert offset_map.encode(0, {offset_map.MAX_SPAN + 1}, 10**9) is None
    assert offset_map.encode(0, {offset_map.MAX_SPAN}, 10**9) is not None


def test_the_lowest_offsets_that_fit_are_kept_when_the_whole_map_does_not() -> None:
    """Over budget, the map keeps every finished offset up to some point and none beyond."""
    rng = random.Random(11)
    finished = {o for o in range(1, 50_000) if rng.random() < 0.9}
    assert offset_map.encode(0, finished, 512) is None
    metadata = offset_map.encode_lowest(0, finished, 512)
    kept = offset_map.decode(0, metadata)
    assert len(metadata) <= 512
    assert kept
    assert kept == {o for o in finished if o <= max(kept)}
