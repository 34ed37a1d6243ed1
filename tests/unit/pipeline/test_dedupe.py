"""The completed-command set, keyed by tenant and by what happened to the command."""

from __future__ import annotations

import msgspec

from contracts.headers import REPLAY
from worker.kafka.memory import StoredRecord
from worker.pipeline.dedupe import CompletedCommands, DedupeKey, remember_results, share_budget

DLQ = "convoai.commands.dlq"


def key(command_id: str) -> DedupeKey:
    return DedupeKey("app", command_id)


def test_completed_commands_evicts_oldest() -> None:
    """Capacity bounds memory; the oldest ids are forgotten first."""
    completed = CompletedCommands(capacity=3)
    for cid in ("a", "b", "c"):
        completed.add(key(cid))
    completed.add(key("a"))  # refresh
    completed.add(key("d"))
    assert key("b") not in completed
    assert all(key(cid) in completed for cid in ("a", "c", "d"))
    assert len(completed) == 3


def result(value: dict[str, object], headers: tuple[tuple[str, bytes], ...] = ()) -> StoredRecord:
    return StoredRecord("results", 0, 0, None, msgspec.json.encode(value), headers, 0)


def test_results_are_remembered_per_app_id_and_per_what_happened() -> None:
    """A result teaches the key of its App ID and id; a rejection is remembered with its
    reason, so it never makes a valid command of that id (or another App ID's) look done; a
    replayed command is remembered with its marker, a forged marker not at all."""
    completed = CompletedCommands(capacity=10)
    remember = remember_results(completed, DLQ)
    remember(result({"command_id": "x", "app_id": "app-a", "outcome": "succeeded"}))
    rejected = {"code": "invalid_command", "message": "bad"}
    remember(
        result({"command_id": "y", "app_id": "app-b", "outcome": "rejected", "error": rejected})
    )
    marker = f"{DLQ}:0:7".encode()
    remember(result({"command_id": "z", "app_id": "app-a"}, ((REPLAY, marker),)))
    remember(result({"command_id": "w", "app_id": "app-a"}, ((REPLAY, b"x" * 400),)))
    assert DedupeKey("app-a", "x") in completed
    assert DedupeKey("app-b", "x") not in completed
    assert DedupeKey("app-b", "y", "invalid_command") in completed
    assert DedupeKey("app-b", "y") not in completed
    assert DedupeKey("app-a", "z", None, f"{DLQ}:0:7") in completed
    assert DedupeKey("app-a", "w") in completed  # the forged marker is not part of any key
    assert len(completed) == 4


def test_warm_up_budget_goes_where_the_records_are() -> None:
    """Partitions with few results leave their share to the others; the budget is never exceeded."""
    shares = share_budget({"a": 10, "b": 1000, "c": 1000}, 900)
    assert shares == {"a": 10, "b": 445, "c": 445}
    assert share_budget({"a": 5, "b": 7}, 100) == {"a": 5, "b": 7}
    assert sum(share_budget({"a": 400, "b": 400, "c": 400}, 1000).values()) == 1000
