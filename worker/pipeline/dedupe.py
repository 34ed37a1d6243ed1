"""Command ids that already have a final result, so redelivered commands are not run again.

Kafka redelivers a command whose offset was not committed: after a crash, a rebalance, or a
producer that wrote it twice. The worker remembers the last `capacity` results (an LRU set):
its own as it publishes them, and the whole group's — at startup it reads the tail of the
results topic, and whenever it is assigned partitions it reads what was added since, so it
knows what another member finished on those partitions before it takes them over. A result is
written last, after the command's state events and dead letter (`worker.pipeline.processor`),
so a known command means every output of it is on Kafka.

What is remembered is keyed by tenant and by what happened (`DedupeKey`): the App ID the command
ran under, its id, and for a rejection its reason. So a record of one App ID cannot make
another App ID's command look done, and a rejected record (whatever id it claims) only shadows a
record rejected the same way, never a valid command.

Guarantee: a command is not executed twice when its result is among the last `capacity` results
of the group as of the member's latest assignment, or was published by the member itself. A
command whose API call ran but whose result was not acknowledged when its worker died runs
again (at most the in-flight limit of that worker).

A record re-produced from the dead-letter topic carries a replay marker (`contracts.headers.REPLAY`,
checked by `contracts.headers.parse_replay`) and is remembered with it: its command runs although
the id is done, and at most once per marker, because its result carries the same marker back to
every member.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import NamedTuple, TypeVar

import msgspec

from contracts.headers import parse_replay
from worker.kafka.ports import Record
from worker.pipeline.followers import StartAt

K = TypeVar("K")


class DedupeKey(NamedTuple):
    """What the dedupe memory knows a command by."""

    app_id: str  # the App ID it ran (or was rejected) under; "" when none was resolved
    command_id: str
    rejected: str | None = None  # the rejection's reason; None for a command that ran
    replay: str | None = None  # the replay marker of a re-produced dead letter


class CompletedCommands:
    """Bounded LRU set of the dedupe keys of commands with a final result."""

    __slots__ = ("_capacity", "_ids")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._ids: OrderedDict[DedupeKey, None] = OrderedDict()

    def __contains__(self, key: DedupeKey) -> bool:
        return key in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, key: DedupeKey) -> None:
        """Remember `key`, evicting the oldest beyond capacity."""
        ids = self._ids
        ids[key] = None
        ids.move_to_end(key)
        if len(ids) > self._capacity:
            ids.popitem(last=False)


class _Error(msgspec.Struct):
    code: str = ""


class ResultIdentity(msgspec.Struct):
    """The fields of a result event that dedupe needs; decoding only them keeps reading cheap."""

    command_id: str
    app_id: str | None = None
    outcome: str = ""
    error: _Error | None = None


_RESULT = msgspec.json.Decoder(ResultIdentity)


def result_key(result: ResultIdentity, replay: str | None) -> DedupeKey:
    """The key of the command a result event reports."""
    rejected = result.error.code if result.outcome == "rejected" and result.error else None
    return DedupeKey(result.app_id or "", result.command_id, rejected, replay)


def remember_results(completed: CompletedCommands, dlq_topic: str) -> Callable[[Record], bool]:
    """A follower's `apply`: add the key of each result record to `completed`."""

    def remember(record: Record) -> bool:
        if not record.value:
            return False
        try:
            result = _RESULT.decode(record.value)
        except (msgspec.DecodeError, RecursionError):
            return False  # not a result event (or one nested past any result): nothing to learn
        if result.command_id:
            completed.add(result_key(result, parse_replay(record.headers, dlq_topic).marker))
        return True

    return remember


def share_budget(available: Mapping[K, int], budget: int) -> dict[K, int]:
    """Split `budget` records over partitions holding `available` records each.

    Partitions with fewer records than an even share give the rest to the others, so the whole
    budget is used whenever the topic holds that many records.
    """
    shares: dict[K, int] = {}
    remaining = budget
    ordered = sorted(available.items(), key=lambda item: item[1])
    for index, (key, count) in enumerate(ordered):
        share = min(count, remaining // (len(ordered) - index))
        shares[key] = share
        remaining -= share
    return shares


def newest(budget: int) -> StartAt:
    """Start each partition so that the newest `budget` records of the topic are read."""

    def start_at(first: Mapping[int, int], end: Mapping[int, int]) -> dict[int, int]:
        available = {p: end[p] - first[p] for p in end}
        return {p: end[p] - share for p, share in share_budget(available, budget).items()}

    return start_at
