"""The partition of an output record: Kafka's default choice, with the key's hash remembered.

Keyed records must land where every Kafka client puts them (the Java client's murmur2 of the
key, modulo the partition count), so consumers that join the worker's events with other
producers' records by key see one partition per key. aiokafka computes that hash in pure
Python for every record, a fifth of the producer's CPU per record; the worker's keys repeat
(an agent's commands share its key), so the hash is computed once per key and remembered.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import lru_cache

from aiokafka.partitioner import murmur2

KEYS_REMEMBERED = 16_384  # about 1 MiB of keys and hashes at most


@lru_cache(maxsize=KEYS_REMEMBERED)
def _positive_hash(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


def default_partition(
    key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
) -> int:
    """aiokafka's `DefaultPartitioner`: a keyed record by its key's hash over all partitions,
    one without a key to any available partition."""
    if key is None:
        return random.choice(available or all_partitions)  # noqa: S311 - spreading, not secrecy
    return all_partitions[_positive_hash(key) % len(all_partitions)]
