"""The processor's view of a record (`worker.pipeline.processor.Work`) without a partition
behind it: what the processor tests and the fuzzer hand it."""

from __future__ import annotations

from worker.kafka.memory import StoredRecord


class Job:
    """A record handed to the processor, with the marks a release sets."""

    def __init__(self, record: StoredRecord) -> None:
        self.record = record
        self.abandoned = False
        self.killed = False
        self.interruptible = True
