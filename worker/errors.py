"""The worker's own exceptions, by what they mean for a record and for the process.

    WorkerError
     ├── AbandonedError        a record given up half-way: its partition is being released;
     │                         it stays uncommitted and the next owner reads it again
     ├── OutputError           an output record could not be delivered
     │    └── OutputRejectedError   never deliverable (too large, refused by the broker)
     └── FatalError            this process cannot go on; a restart can fix it (the message
                               says what happened; the worker drains and exits non-zero)

Command-level problems (invalid input, API refusals, exhausted retries) are not exceptions here:
they become a command's result. The API client's errors live in `worker.api.errors`, the
contracts' decode errors in `contracts.errors`.
"""

from __future__ import annotations


class WorkerError(Exception):
    """Base of the worker's own exceptions."""


class AbandonedError(WorkerError):
    """A record was interrupted because its partition is being released; it is not finished."""


class OutputError(WorkerError):
    """An output record (result, agent state, dead letter) was not delivered."""

    def __init__(self, topic: str, message: str) -> None:
        super().__init__(f"{topic}: {message}")
        self.topic = topic


class OutputRejectedError(OutputError):
    """An output record can never be delivered as it is (too large, refused by the broker)."""


class FatalError(WorkerError):
    """Processing cannot continue in this process; the worker stops and exits non-zero."""
