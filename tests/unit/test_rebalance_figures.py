"""The rebalance benchmark's figures: what counts as a moved partition and as a rebalance, and
in which step a figure lands (`bench/rebalance_figures.py`)."""

from __future__ import annotations

from bench.rebalance_figures import (
    STEADY,
    Assigned,
    MemberLog,
    Released,
    ResultSeen,
    StepFigures,
    Timeline,
    Window,
    step_figures,
    table,
)

TIMELINE = Timeline([Window(STEADY, 10, 20), Window("change", 20, 30), Window("later", 30, 40)])


def assigned(at: float, process: str, partitions: range, owner: str = "") -> Assigned:
    return Assigned(at, owner or process, process, frozenset(partitions))


def figures(
    logs: list[MemberLog],
    results: list[ResultSeen] | None = None,
    speaks: list[tuple[str, float]] | None = None,
) -> list[StepFigures]:
    base = [StepFigures(w.name, 10, 1, 1, 2, 5) for w in TIMELINE.windows]
    return step_figures(base, TIMELINE, logs, results or [], speaks or [])


def start(*members: tuple[str, range], owner: dict[str, str] | None = None) -> list[MemberLog]:
    """Members that joined before the first step (not counted), one log each."""
    owners = owner or {}
    return [MemberLog([assigned(1, p, r, owners.get(p, ""))]) for p, r in members]


def test_only_partitions_that_change_owner_count_as_moved() -> None:
    logs = start(("w1", range(6)), ("w2", range(6, 12)))
    # a third member joins during "change": sticky hands it two partitions of each member
    logs[0].assigned.append(assigned(21, "w1", range(4)))
    logs[1].assigned.append(assigned(21.2, "w2", range(6, 10)))
    logs.append(MemberLog([assigned(21.4, "w3", range(4, 6)), assigned(21.4, "w3", range(10, 12))]))
    steps = figures(logs)
    assert [(s.rebalances, s.moved) for s in steps] == [(0, 0), (1, 4), (0, 0)]


def restarted(static: bool) -> list[MemberLog]:
    """Two members; during "change" w2's pod is replaced by the process w3: with static
    membership w3 rejoins alone as worker-1, without it the group rebalances."""
    owner = {"w1": "worker-0", "w2": "worker-1", "w3": "worker-1"} if static else None
    logs = start(("w1", range(6)), ("w2", range(6, 12)), owner=owner)
    logs.append(MemberLog([assigned(25, "w3", range(6, 12), owner="worker-1" if static else "")]))
    if not static:
        logs[0].assigned.append(assigned(25.5, "w1", range(6)))
    return logs


def test_a_static_member_back_under_its_instance_id_moves_nothing_and_is_no_rebalance() -> None:
    assert [(s.rebalances, s.moved) for s in figures(restarted(static=True))] == [(0, 0)] * 3
    assert [(s.rebalances, s.moved) for s in figures(restarted(static=False))] == [
        (0, 0),
        (1, 6),
        (0, 0),
    ]


def test_a_release_counts_in_the_step_it_began_in() -> None:
    logs = start(("w1", range(12)))
    # revoked during "change", its in-flight commands drained until after "later" began
    logs[0].released.append(Released(32, "w1", "revoked", frozenset(range(12)), 3, seconds=4))
    logs[0].released.append(Released(35, "w1", "stopping", frozenset(range(12)), 1, seconds=1))
    steps = figures(logs)
    assert [(s.revoked, s.interrupted) for s in steps] == [(0, 0), (12, 3), (0, 1)]


def test_repeats_unknowns_and_gaps_are_counted_per_step() -> None:
    results = [
        ResultSeen("a", "succeeded", 0, 11),
        ResultSeen("b", "unknown", 1, 22),
        ResultSeen("a", "succeeded", 0, 23),  # a's result again
        ResultSeen("c", "succeeded", 0, 31),
    ]
    speaks = [("a", 10.5), ("b", 12), ("b", 21), ("c", 29)]
    steps = figures(start(("w1", range(12))), results, speaks)
    assert [s.unknown for s in steps] == [0, 1, 0]
    assert [s.duplicate_results for s in steps] == [0, 1, 0]
    assert [s.twice_at_api for s in steps] == [0, 1, 0]
    assert [s.group_paused_s for s in steps] == [0.0, 11.0, 8.0]
    assert [s.partition_waited_s for s in steps] == [0.0, 12.0, 8.0]


def test_the_sums_leave_out_the_steady_window() -> None:
    steady = StepFigures(STEADY, 10, 1, 1, 2, 5, rebalances=7, moved=9, group_paused_s=9.0)
    change = StepFigures("change", 10, 1, 1, 3, 5, rebalances=1, moved=4, group_paused_s=3.0)
    total = table([("B", [steady, change])]).splitlines()[-1]
    assert total.startswith("| | **all changes** |  |  | **1** | **4** |")
    assert "max 3.0" in total
