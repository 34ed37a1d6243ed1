"""The offset map: which records above the committed position are already finished.

Kafka commits one position per partition, but records of different keys finish out of order, so
the position can only be the first unfinished offset. Without more, a member that takes the
partition over runs everything above that position again — commands that already ran. As in
Confluent's Parallel Consumer, the finished offsets above the position travel in the commit's
metadata string, and whoever is assigned the partition next skips them.

Encoding: `om1:<position>:<data>`, where `<data>` is the URL-safe base64 of the zlib-compressed
bitmap of offsets `position + 1 ...` (bit i of byte j stands for `position + 1 + 8j + i`; 1 =
finished). The position is repeated so that a map written for another position (an operator
reset the group's offsets) is recognised and ignored. Capacity within the broker's default
`offset.metadata.max.bytes` of 4,096: any pattern over about 24,000 offsets, and far more when
it compresses (a few gaps in a run of finished offsets takes a few dozen bytes). When a map
does not fit, the lowest finished offsets that fit are committed (`encode_lowest`); the
consumer pauses a partition well before that happens (`worker.pipeline.consumer`).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterable

PREFIX = "om1:"
MAX_BITMAP_BYTES = 1 << 17  # a map spans at most ~1M offsets; more is not a map of ours
MAX_SPAN = MAX_BITMAP_BYTES * 8  # offsets above the position that a map can describe


class OffsetMapError(ValueError):
    """Commit metadata that is not an offset map this worker can read."""


def encode(position: int, finished: Iterable[int], budget: int) -> str | None:
    """The metadata for `position` with `finished` offsets above it; None if it does not fit
    `budget` characters or spans more offsets than `decode` accepts.

    `finished` offsets at or below `position` are ignored (they are committed already).
    """
    above = [offset - position - 1 for offset in finished if offset > position]
    return _encode(position, above, budget)


def _encode(position: int, above: list[int], budget: int) -> str | None:
    if not above:
        return ""
    highest = max(above)
    if highest >= MAX_SPAN:
        return None
    bitmap = bytearray(highest // 8 + 1)
    for bit in above:
        bitmap[bit >> 3] |= 1 << (bit & 7)
    data = base64.urlsafe_b64encode(zlib.compress(bytes(bitmap), 9)).decode("ascii")
    metadata = f"{PREFIX}{position}:{data}"
    return metadata if len(metadata) <= budget else None


def encode_lowest(position: int, finished: Iterable[int], budget: int) -> str:
    """The map of as many of the lowest finished offsets above `position` as fit `budget`.

    For a map that does not fit whole: the offsets it leaves out may run again under a new
    owner (the dedupe memory still knows most of them), but those it keeps do not.
    """
    above = sorted(offset - position - 1 for offset in finished if offset > position)
    fits, misses = 0, len(above)  # `fits` offsets are known to fit, `misses` known not to
    while misses - fits > 1:
        middle = (fits + misses) // 2
        if _encode(position, above[:middle], budget) is None:
            misses = middle
        else:
            fits = middle
    return _encode(position, above[:fits], budget) or ""


def decode(position: int, metadata: str) -> set[int]:
    """The finished offsets above `position` recorded in `metadata` (empty for no map).

    Raises `OffsetMapError` for metadata that claims to be a map but cannot be read, or that
    was written for another position.
    """
    if not metadata:
        return set()
    if not metadata.startswith(PREFIX):
        raise OffsetMapError(f"not an offset map: {metadata[:40]!r}")
    base, _, data = metadata[len(PREFIX) :].partition(":")
    if base != str(position):
        raise OffsetMapError(f"offset map for position {base}, committed position is {position}")
    try:
        inflater = zlib.decompressobj()
        bitmap = inflater.decompress(base64.urlsafe_b64decode(data), MAX_BITMAP_BYTES)
    except (binascii.Error, zlib.error, ValueError) as error:
        raise OffsetMapError(f"unreadable offset map: {error}") from error
    if inflater.unconsumed_tail or not inflater.eof:
        raise OffsetMapError("offset map truncated or larger than any map this worker writes")
    return {
        position + 1 + (index << 3) + bit
        for index, byte in enumerate(bitmap)
        if byte
        for bit in range(8)
        if byte >> bit & 1
    }
