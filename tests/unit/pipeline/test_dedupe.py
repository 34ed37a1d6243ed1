"""The completed-command set."""

from __future__ import annotations

from worker.pipeline.dedupe import CompletedCommands, share_budget


def test_completed_commands_evicts_oldest() -> None:
    """Capacity bounds memory; the oldest ids are forgotten first."""
    completed = CompletedCommands(capacity=3)
    for cid in ("a", "b", "c"):
        completed.add(cid)
    completed.add("a")  # refresh
    completed.add("d")
    assert "b" not in completed
    assert all(cid in completed for cid in ("a", "c", "d"))
    assert len(completed) == 3


def test_warm_up_budget_goes_where_the_records_are() -> None:
    """Partitions with few results leave their share to the others; the budget is never exceeded."""
    shares = share_budget({"a": 10, "b": 1000, "c": 1000}, 900)
    assert shares == {"a": 10, "b": 445, "c": 445}
    assert share_budget({"a": 5, "b": 7}, 100) == {"a": 5, "b": 7}
    assert sum(share_budget({"a": 400, "b": 400, "c": 400}, 1000).values()) == 1000
