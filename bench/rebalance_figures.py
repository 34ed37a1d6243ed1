"""What one group change cost, read from what the run left behind (`bench/bench_rebalance.py`).

A step is a window of the run: from the moment its change began (a member started, or
SIGTERMed) until the next step began. Each figure is attributed to the step in whose window it
happened:

- *rebalances*: group-wide reassignments, from the members' `partitions_assigned` log lines:
  lines within `SAME_REBALANCE_S` of each other are one reassignment, and it counts when a
  member that already held partitions is among them (a static member taking its own partitions
  back joins alone and is not a rebalance).
- *moved*: partitions handed to another owner; the owner is the group member, i.e. the process
  with dynamic membership and the group instance id with static membership.
- *revoked*: partitions taken from members (`partitions_released`, `why=revoked`): with the
  eager protocol, every member gives up every partition at every rebalance, moved or not.
- *unknown*: results whose outcome is `unknown` (the speak was interrupted after it may have
  reached the API).
- *twice at the API*: speak requests beyond the first per command (the emulator's request
  log; a speak's text is its command id).
- *duplicate results*: result records beyond the first per command id.
- *group paused*: the longest time without a new result on any partition (the results topic's
  append times); *partition waited*: the longest time one partition went without one; *no speak
  started*: the longest time no speak reached the API (the group took no new command; a result
  comes one API answer later, so the first two include one speak's latency).
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

SAME_REBALANCE_S = 1.0  # the assignments of one rebalance arrive together (one SyncGroup round)


class Window(NamedTuple):
    """One step of the run, in Unix seconds."""

    name: str
    began: float
    ended: float


class Assigned(NamedTuple):
    """A `partitions_assigned` line of one member's log."""

    at: float
    owner: str  # the group member: process name, or the group instance id
    process: str
    partitions: frozenset[int]


class Released(NamedTuple):
    """A `partitions_released` line: `at` is when the release ended."""

    at: float
    process: str
    why: str
    partitions: frozenset[int]
    interrupted: int
    seconds: float


@dataclass
class MemberLog:
    """What one member's log says about its partitions."""

    assigned: list[Assigned] = field(default_factory=list)
    released: list[Released] = field(default_factory=list)


def read_member_log(path: Path, process: str, owner: str) -> MemberLog:
    """The assignment and release lines of one worker's JSON log."""
    found = MemberLog()
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        event = entry.get("event")
        if event not in ("partitions_assigned", "partitions_released"):
            continue
        at = datetime.fromisoformat(entry["timestamp"]).timestamp()
        partitions = frozenset(int(p) for p in entry["partitions"])
        if event == "partitions_assigned":
            found.assigned.append(Assigned(at, owner, process, partitions))
        else:
            found.released.append(
                Released(
                    at,
                    process,
                    entry["why"],
                    partitions,
                    int(entry["interrupted"]),
                    float(entry["seconds"]),
                )
            )
    return found


@dataclass
class StepFigures:
    """One step's figures (see the module docstring)."""

    step: str
    seconds: float
    change_s: float  # the change itself: a member started until ready, or SIGTERM until exit
    recovered_s: float  # then, until every partition served commands produced after it
    members_after: int
    in_flight: int  # commands executing in the group when the change began (their /metrics)
    rebalances: int = 0
    moved: int = 0
    revoked: int = 0
    interrupted: int = 0  # commands the members interrupted in their releases
    unknown: int = 0
    twice_at_api: int = 0
    duplicate_results: int = 0
    group_paused_s: float = 0.0
    partition_waited_s: float = 0.0
    no_speak_started_s: float = 0.0


class Timeline:
    """Finds the step of a moment."""

    def __init__(self, windows: Sequence[Window]) -> None:
        self.windows = list(windows)
        self._starts = [w.began for w in windows]

    def step_of(self, at: float) -> int | None:
        """The index of the step whose window holds `at` (None: before or after every step)."""
        index = bisect.bisect_right(self._starts, at) - 1
        if index < 0 or at >= self.windows[index].ended:
            return None
        return index

    def count(self, moments: Iterable[float]) -> list[int]:
        """How many of `moments` fall in each step."""
        counts = [0] * len(self.windows)
        for at in moments:
            index = self.step_of(at)
            if index is not None:
                counts[index] += 1
        return counts

    def longest_gap(self, times: Iterable[float]) -> list[float]:
        """Per step, the longest gap between consecutive `times` that ended in it."""
        ordered = sorted(times)
        longest = [0.0] * len(self.windows)
        for earlier, later in itertools.pairwise(ordered):
            index = self.step_of(later)
            if index is not None:
                longest[index] = max(longest[index], later - earlier)
        return longest


def ownership(logs: Sequence[MemberLog], timeline: Timeline) -> tuple[list[int], list[int]]:
    """Per step: rebalances, and partitions handed to another owner."""
    assigned = sorted((a for log in logs for a in log.assigned), key=lambda a: a.at)
    owner: dict[int, str] = {}
    holders: set[str] = set()  # processes that have held partitions
    moved = [0] * len(timeline.windows)
    rebalances = [0] * len(timeline.windows)
    for group in _together(assigned):
        index = timeline.step_of(group[0].at)
        if index is not None and any(a.process in holders for a in group):
            rebalances[index] += 1
        for line in group:
            holders.add(line.process)
            for partition in line.partitions:
                before = owner.get(partition)
                if before is not None and before != line.owner and index is not None:
                    moved[index] += 1
                owner[partition] = line.owner
    return rebalances, moved


def _together(assigned: Sequence[Assigned]) -> list[list[Assigned]]:
    """Assignment lines grouped into rebalances (each within `SAME_REBALANCE_S` of the last)."""
    groups: list[list[Assigned]] = []
    for line in assigned:
        if groups and line.at - groups[-1][-1].at <= SAME_REBALANCE_S:
            groups[-1].append(line)
        else:
            groups.append([line])
    return groups


class ResultSeen(NamedTuple):
    """A result record: its command, outcome, partition and append time (Unix seconds)."""

    command_id: str
    outcome: str
    partition: int
    at: float


def step_figures(
    base: Sequence[StepFigures],
    timeline: Timeline,
    logs: Sequence[MemberLog],
    results: Sequence[ResultSeen],
    speak_requests: Sequence[tuple[str, float]],
) -> list[StepFigures]:
    """Fill in every step's figures from the logs, the results and the speaks the API saw
    (`(command id, arrival time)`)."""
    rebalances, moved = ownership(logs, timeline)
    revoked = [0] * len(base)
    interrupted = [0] * len(base)
    for log in logs:
        for release in log.released:
            index = timeline.step_of(release.at - release.seconds)
            if index is None:
                continue
            interrupted[index] += release.interrupted
            if release.why == "revoked":
                revoked[index] += len(release.partitions)
    unknown = timeline.count(r.at for r in results if r.outcome == "unknown")
    duplicates = timeline.count(_repeats((r.command_id, r.at) for r in results))
    twice = timeline.count(_repeats(speak_requests))
    paused = timeline.longest_gap(r.at for r in results)
    idle = timeline.longest_gap(at for _, at in speak_requests)
    by_partition: defaultdict[int, list[float]] = defaultdict(list)
    for r in results:
        by_partition[r.partition].append(r.at)
    waited = [0.0] * len(base)
    for times in by_partition.values():
        waited = [max(a, b) for a, b in zip(waited, timeline.longest_gap(times), strict=True)]
    return [
        dataclasses.replace(
            f,
            rebalances=rebalances[n],
            moved=moved[n],
            revoked=revoked[n],
            interrupted=interrupted[n],
            unknown=unknown[n],
            twice_at_api=twice[n],
            duplicate_results=duplicates[n],
            group_paused_s=round(paused[n], 1),
            partition_waited_s=round(waited[n], 1),
            no_speak_started_s=round(idle[n], 1),
        )
        for n, f in enumerate(base)
    ]


def _repeats(seen: Iterable[tuple[str, float]]) -> list[float]:
    """The moments of every occurrence of an id after its first."""
    count: Counter[str] = Counter()
    repeats = []
    for command_id, at in sorted(seen, key=lambda s: s[1]):
        count[command_id] += 1
        if count[command_id] > 1:
            repeats.append(at)
    return repeats


COLUMNS = (
    ("step", "step"),
    ("members_after", "members"),
    ("in_flight", "in flight"),
    ("rebalances", "rebalances"),
    ("moved", "partitions moved"),
    ("revoked", "partitions revoked"),
    ("unknown", "ended `unknown`"),
    ("twice_at_api", "speaks twice at the API"),
    ("duplicate_results", "duplicate results"),
    ("group_paused_s", "group paused s"),
    ("partition_waited_s", "a partition waited s"),
    ("no_speak_started_s", "no speak started s"),
)
SUMMED = ("rebalances", "moved", "revoked", "unknown", "twice_at_api", "duplicate_results")


def table(configurations: Sequence[tuple[str, Sequence[StepFigures]]]) -> str:
    """One Markdown table: per configuration, a row per step and the sums of the changes."""
    lines = [
        "| configuration | " + " | ".join(title for _, title in COLUMNS) + " |",
        "|---|---|" + "---:|" * (len(COLUMNS) - 1),
    ]
    for name, steps in configurations:
        for n, figures in enumerate(steps):
            values = _as_row(figures)
            lines.append(f"| {name if n == 0 else ''} | " + " | ".join(values) + " |")
        lines.append("| | **all changes** | " + " | ".join(_sums(steps)) + " |")
    return "\n".join(lines)


def _as_row(figures: StepFigures) -> list[str]:
    row = []
    for key, _ in COLUMNS:
        value = getattr(figures, key)
        row.append(f"{value:.1f}" if isinstance(value, float) else str(value))
    return row


def _sums(steps: Sequence[StepFigures]) -> list[str]:
    changes = [s for s in steps if s.step != STEADY]
    cells = []
    for key, _ in COLUMNS[1:]:
        if key in SUMMED:
            cells.append(f"**{sum(getattr(s, key) for s in changes)}**")
        elif key.endswith("_s"):
            cells.append(f"max {max((getattr(s, key) for s in changes), default=0.0):.1f}")
        else:
            cells.append("")
    return cells


STEADY = "steady (no change)"


def as_json(figures: Sequence[StepFigures]) -> list[dict[str, Any]]:
    """The steps as plain data."""
    return [dict(vars(f)) for f in figures]
