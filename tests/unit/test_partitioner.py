"""The output records' partitioner places keys exactly where Kafka's default partitioner does."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner

from worker.kafka.partitioner import default_partition


def test_a_keyed_record_goes_where_the_default_partitioner_puts_it() -> None:
    rng = random.Random(7)
    keys = [rng.randbytes(rng.randrange(0, 64)) for _ in range(2_000)]
    for count in (1, 3, 12, 50):
        partitions = list(range(count))
        for key in keys + keys:  # the second pass reads the remembered hashes
            expected = DefaultPartitioner()(key, partitions, partitions)
            assert default_partition(key, partitions, partitions) == expected


def test_a_record_without_key_goes_to_an_available_partition() -> None:
    chosen = {default_partition(None, [0, 1, 2, 3], [1, 3]) for _ in range(200)}
    assert chosen == {1, 3}
    assert default_partition(None, [0, 1, 2], []) in {0, 1, 2}
