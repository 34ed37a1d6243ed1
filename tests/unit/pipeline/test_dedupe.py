"""The completed-command set and the agent directory."""

from __future__ import annotations

from worker.execution.names import AgentDirectory
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


def test_directory_resolves_latest_agent_for_a_name() -> None:
    """A name started again maps to the newest agent; apps are separate namespaces."""
    directory = AgentDirectory()
    directory.record("app1", "alice", "A1", "RUNNING")
    directory.record("app1", "alice", "A2", "STARTING")
    directory.record("app2", "alice", "B1", "RUNNING")
    assert directory.resolve("app1", "alice") == "A2"
    assert directory.resolve("app2", "alice") == "B1"
    assert directory.resolve("app1", "bob") is None
    assert directory.status("app1", "A1") == "RUNNING"


def test_alive_lists_only_own_unfinished_agents() -> None:
    """Reconciliation watches agents this worker started that are not stopped or failed."""
    directory = AgentDirectory()
    directory.record("app", "a", "A", "RUNNING")
    directory.record("app", "b", "B", "STOPPED")
    directory.record("app", None, "C", "STARTING")
    assert sorted(agent_id for _, agent_id, _, _ in directory.alive()) == ["A", "C"]


def test_warm_up_budget_goes_where_the_records_are() -> None:
    """Partitions with few results leave their share to the others; the budget is never exceeded."""
    shares = share_budget({"a": 10, "b": 1000, "c": 1000}, 900)
    assert shares == {"a": 10, "b": 445, "c": 445}
    assert share_budget({"a": 5, "b": 7}, 100) == {"a": 5, "b": 7}
    assert sum(share_budget({"a": 400, "b": 400, "c": 400}, 1000).values()) == 1000
