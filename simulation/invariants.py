"""What must hold after every simulated run, whatever the faults were.

- **Complete:** every command with an id has a final result; a record without one has its dead
  letter; the run finished (no member hung, nothing stalled).
- **At most once:** no non-idempotent command (speak, think, call.start) is performed by the
  API twice, and no command has two results, except for work lost by a crash or a forced exit
  (each may repeat at most the in-flight limit) or killed at the end of a release that ran out
  of time (at most what was killed). Repeats are counted either way.
- **Ordered:** per key, the API performs commands in offset order (a repeat of the latest one
  is allowed); a new owner never runs a key's earlier command after a later one ran.
- **Committed only when done:** no commit passes a record whose outputs are not on Kafka
  (checked at every commit, `simulation.world`); a result is on Kafka only after its dead
  letter and, for a start, after its agent's state event.
- **Bounded:** every revoke ends within the release bound (and no member is expelled for a
  slow revoke), every graceful stop within the shutdown bound, every forced stop within a
  few seconds; buffered bytes stay within the budget plus one poll.
- **No exit on content:** no member ends with an error of its own.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, NamedTuple

import msgspec

from simulation.world import FORCED_EXIT_BOUND_SECONDS, RESULTS, STATE, Observations

NON_IDEMPOTENT = frozenset({"agent.speak", "agent.think", "call.start"})
SLACK_SECONDS = 0.5  # the loop's own scheduling around a deadline
MAX_POLL_RECORDS = 500
RECORD_OVERHEAD_BYTES = 512


class Violation(NamedTuple):
    """One broken promise."""

    kind: str
    detail: str


class Figures(NamedTuple):
    """What a run amounted to."""

    commands: int
    results: int
    repeated_calls: int
    duplicate_results: int
    allowance: int
    crashes: int
    killed: int
    virtual_seconds: float


def judge(run: Observations) -> tuple[list[Violation], Figures]:
    """The violations of `run`, and its figures."""
    violations: list[Violation] = []
    if run.stalled is not None:
        violations.append(Violation("stalled", run.stalled))
    violations += _exits(run)
    violations += [Violation("commit_passed_unfinished", text) for text in run.unfinished_commits]
    violations += _complete(run)
    repeated, duplicates, allowance, crashes, killed = _repeats(run)
    if repeated > allowance:
        violations.append(
            Violation("repeated_calls", f"{repeated} repeated calls, allowance {allowance}")
        )
    if duplicates > allowance:
        violations.append(
            Violation("duplicate_results", f"{duplicates} duplicate results, allowance {allowance}")
        )
    violations += _order(run)
    violations += _outputs_order(run)
    violations += _bounds(run)
    results = sum(len(seqs) for seqs in run.outputs.results.values())
    figures = Figures(
        commands=len(run.sent),
        results=results,
        repeated_calls=repeated,
        duplicate_results=duplicates,
        allowance=allowance,
        crashes=crashes,
        killed=killed,
        virtual_seconds=round(run.ended_at, 1),
    )
    return violations, figures


def _exits(run: Observations) -> list[Violation]:
    return [
        Violation("member_exited", f"{member.name} ended with {member.error!r}")
        for member in run.members
        if member.error is not None
    ]


def _complete(run: Observations) -> list[Violation]:
    run.outputs.refresh()
    results, letters = run.outputs.results, run.outputs.letters
    missing = [
        f"partition {p} offset {o} ({s.command_id or 'no id'})"
        for p, o, s in run.sent
        if not (s.command_id in results if s.command_id else (p, o) in letters)
    ]
    if not missing or run.stalled is not None:
        return []  # a stalled run is reported as such; what it left undone follows from it
    return [Violation("lost", f"{len(missing)} without outputs, e.g. {missing[:3]}")]


def _repeats(run: Observations) -> tuple[int, int, int, int, int]:
    performed = Counter(
        call.marker
        for call in run.api.calls
        if call.acted and call.operation in NON_IDEMPOTENT and call.marker
    )
    repeated = sum(count - 1 for count in performed.values() if count > 1)
    duplicates = sum(len(seqs) - 1 for seqs in run.outputs.results.values() if len(seqs) > 1)
    crashes = sum(1 for m in run.members if m.crashed_at is not None or m.forced_at is not None)
    killed = sum(int(e.get("killed", 0)) for e in run.events if e["event"] == "partitions_released")
    allowance = crashes * run.settings.max_in_flight + killed
    return repeated, duplicates, allowance, crashes, killed


def _order(run: Observations) -> list[Violation]:
    """Per key, performed calls follow the commands' offsets (repeats of the latest allowed)."""
    by_id: dict[str | None, tuple[bytes, int]] = {
        s.command_id: (s.key, o) for _, o, s in run.sent if s.command_id and s.operation
    }
    start_of = {s.key: o for _, o, s in run.sent if s.operation == "agent.start"}
    stop_of = {s.key: o for _, o, s in run.sent if s.operation == "agent.stop"}
    latest: dict[bytes, tuple[int, str]] = {}
    found = []
    for call in run.api.calls:
        if not call.acted:
            continue
        place = _place(call, by_id, start_of, stop_of, run.api.names)
        if place is None:
            continue
        key, offset = place
        before = latest.get(key)
        if before is not None and offset < before[0]:
            found.append(
                Violation(
                    "out_of_order",
                    f"{call.member} performed {call.operation} of offset {offset} of key "
                    f"{key.decode(errors='replace')} at t={call.at:.2f} s after offset "
                    f"{before[0]} ({before[1]})",
                )
            )
        if before is None or offset >= before[0]:
            latest[key] = (offset, call.member)
    return found[:5]


def _place(
    call: Any,
    by_id: dict[str | None, tuple[bytes, int]],
    start_of: dict[bytes, int],
    stop_of: dict[bytes, int],
    names: dict[str, str],
) -> tuple[bytes, int] | None:
    """The (key, offset) of the command a performed call served, when it can be told."""
    if call.operation in NON_IDEMPOTENT and call.marker in by_id:
        return by_id[call.marker]
    if call.operation == "agent.start" and call.marker is not None:
        key = call.marker.encode()
        return (key, start_of[key]) if key in start_of else None
    if call.operation == "agent.stop" and call.agent_id in names:
        key = names[call.agent_id].encode()
        return (key, stop_of[key]) if key in stop_of else None
    return None


class _Result(msgspec.Struct):
    command_id: str
    command: str | None = None
    outcome: str = ""
    agent_id: str | None = None


def _outputs_order(run: Observations) -> list[Violation]:
    """A dead letter before its command's result; a start's state event before its result."""
    found = []
    first_result: dict[str, int] = {}
    starts: list[tuple[str, int]] = []
    for record in run.broker.records(RESULTS):
        if not record.value:
            continue
        result = msgspec.json.decode(record.value, type=_Result)
        first_result.setdefault(result.command_id, record.sequence)
        if result.command == "agent.start" and result.outcome == "succeeded" and result.agent_id:
            starts.append((result.agent_id, record.sequence))
    id_at = {(p, o): s.command_id for p, o, s in run.sent}
    for place, letter in run.outputs.letters.items():
        command_id = id_at.get(place)
        if command_id and command_id in first_result and first_result[command_id] < letter:
            found.append(
                Violation("result_before_dead_letter", f"{command_id}: result before letter")
            )
    state_seen: dict[bytes, int] = {}
    for record in run.broker.records(STATE):
        if record.key is not None:
            state_seen.setdefault(record.key, record.sequence)
    for agent_id, sequence in starts:
        seen = state_seen.get(agent_id.encode())
        if seen is None or seen > sequence:
            found.append(
                Violation("result_before_state", f"agent {agent_id}: result before its state")
            )
    return found[:5]


def _bounds(run: Observations) -> list[Violation]:
    deadlines = run.deadlines
    found = []
    for event in run.events:
        if event["event"] != "partitions_released":
            continue
        bound = (
            deadlines.release_bound
            if event["why"] == "revoked"
            else (deadlines.drain_grace + deadlines.after_grace)
        )
        if event["seconds"] > bound + SLACK_SECONDS:
            found.append(
                Violation(
                    "release_overran",
                    f"{event.get('member')} took {event['seconds']:.2f} s to release "
                    f"({event['why']}, bound {bound:.2f} s)",
                )
            )
    largest = max((len(s.value or b"") + len(s.key) for _, _, s in run.sent), default=0)
    byte_bound = run.settings.buffer_max_bytes + MAX_POLL_RECORDS * (
        largest + RECORD_OVERHEAD_BYTES
    )
    for member in run.members:
        if any(source.expelled for source in member.backend.sources):
            found.append(Violation("expelled", f"{member.name} was expelled in a revoke"))
        if member.ended_at is not None and member.crashed_at is None:
            if member.forced_at is not None:
                took, bound = member.ended_at - member.forced_at, FORCED_EXIT_BOUND_SECONDS
            elif member.stop_at is not None:
                took, bound = member.ended_at - member.stop_at, deadlines.shutdown_bound
            else:
                continue
            if took > bound + SLACK_SECONDS:
                found.append(
                    Violation(
                        "shutdown_overran",
                        f"{member.name} took {took:.2f} s to stop (bound {bound:.2f} s)",
                    )
                )
        if member.peak_buffered > byte_bound:
            found.append(
                Violation(
                    "memory",
                    f"{member.name} buffered {member.peak_buffered} bytes (> {byte_bound})",
                )
            )
    return found
