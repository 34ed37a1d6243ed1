"""The figures of one scenario and the guarantees they must meet.

Definitions (the table of docs/guarantees.md uses them):

- *without result*: a produced record with a usable command id and no result on the results
  topic. Must be 0.
- *lost*: a produced record with neither a result nor a dead letter. Must be 0.
- *duplicate results*: result records beyond one per command id.
- *repeated calls*: requests of non-idempotent commands (speak, call.start) beyond one per
  command that reached the API (the emulator's request log, attributed by the command id in the
  body; an injected 429 or 5xx did nothing and does not count). Each repeat is charged to the
  last fault that began before it reached the API (a fault that lasts, a rolling deploy, from
  its beginning; the others at their end): at most `CONVOAI_MAX_IN_FLIGHT` per SIGKILL, none
  for any other fault or before the first. Duplicate results: at most `CONVOAI_MAX_IN_FLIGHT` per
  SIGKILL in all.
- *dead letters*: each must locate its original record through its Connect headers and carry
  its key and value (`dead_letter_problems`); every poison record and every command that ran
  out of retries must have exactly one.
- *recovery*: for each fault, the time from its end (the SIGKILL, after which the worker is
  restarted at once; a member's exit after SIGTERM; a new member being ready; the broker
  serving again; the storm's end) until every results partition that has results after it has
  one (`LogAppendTime`); the largest over the faults. Faults come one at a time, each once the
  group has recovered from the one before.
- *longest stall*: the longest time any results partition went without a new result between
  the run's first result and that partition's last one (the downtime a fault causes).
- *outcomes*: each scenario states the outcomes it allows (`allowed`; a failure counts by its
  code, e.g. `failed (retries_exhausted)`); a poison record's result must be `rejected`, and
  no other result may be; the commands of an agent whose start never ran at the API may also
  fail with `agent_not_found`. Any other outcome is a violation.
- *succeeded without a call*: a `succeeded` result, not `reconciled`, of a command none of
  whose requests executed at the API (a 2xx, or a connection closed after the operation ran).
  Must be 0.
- *calls out of order*: requests that reached the API before a request of an earlier command
  of the same key (agent), in the order they arrived at the emulator, against the order of the
  commands topic. Going back is allowed only to repeat, after a SIGKILL, a command whose first
  request came before that SIGKILL. Must be 0.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

from aiokafka import ConsumerRecord

from chaos.calls import Call
from contracts import ResultEvent
from contracts.headers import DLQ_ORIGINAL_OFFSET, DLQ_ORIGINAL_PARTITION
from devtools.workload import Sent
from tests.pipeline.group import dead_letter_problems

Records = Sequence[ConsumerRecord[bytes, bytes]]
EXHAUSTED = "retries_exhausted"
BEFORE_ANY_FAULT = "the start"


class Fault(NamedTuple):
    """A fault a scenario injected: its name, when it ended (Unix seconds), whether it was a
    SIGKILL (the only fault allowed to repeat non-idempotent calls), and when it began if it
    lasted (a rolling deploy: the calls it repeats reach the API before it ends)."""

    name: str
    end: float
    killed: bool = False
    began: float | None = None

    @property
    def since(self) -> float:
        """From when the calls it repeats are charged to it."""
        return self.end if self.began is None else self.began


@dataclass
class Figures:
    """What one scenario produced, and the guarantees it broke (`violations`)."""

    scenario: str
    setup: dict[str, Any]
    commands: int = 0
    poison: int = 0
    results: int = 0
    without_result: int = 0
    lost: int = 0
    duplicate_results: int = 0
    non_idempotent: int = 0
    repeated_calls: int = 0
    repeat_bound: int = 0
    dead_letters: int = 0
    dead_letters_ok: int = 0
    dead_letters_expected: int = 0
    unexpected_outcomes: int = 0
    succeeded_without_call: int = 0
    out_of_order: int = 0
    recovery_s: float | None = None
    longest_stall_s: float = 0.0
    drain_s: float = 0.0
    seconds: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def require(self, holds: bool, violation: str) -> None:
        """Record `violation` unless the guarantee `holds`."""
        if not holds:
            self.violations.append(violation)


@dataclass
class Observed:
    """Everything a scenario's checks read after the run."""

    sent: list[Sent]
    places: list[tuple[int, int]]  # (partition, offset) of each sent record
    originals: Records  # the commands topic
    results: list[ResultEvent]
    dead: Records
    calls: list[Call]  # the emulator's request log, attributed to the commands, as they arrived

    @cached_property
    def executed(self) -> frozenset[str]:
        """The commands at least one of whose requests ran at the API."""
        return frozenset(call.command_id for call in self.calls if call.executed)


def judge(
    figures: Figures,
    seen: Observed,
    faults: list[Fault],
    *,
    in_flight: int,
    allowed: frozenset[str],
) -> None:
    """Fill in `figures` from `seen` and record every broken guarantee (`allowed`: the outcomes
    the scenario allows)."""
    per_command = Counter(result.command_id for result in seen.results)
    ids = [s.command_id for s in seen.sent if s.command_id is not None]
    figures.commands = len(seen.sent) - sum(1 for s in seen.sent if s.poison)
    figures.poison = len(seen.sent) - figures.commands
    figures.results = len(seen.results)
    figures.without_result = sum(1 for cid in ids if cid not in per_command)
    figures.duplicate_results = sum(per_command[cid] - 1 for cid in set(ids) if per_command[cid])
    figures.outcomes = dict(Counter(result.outcome for result in seen.results))
    reached: dict[str, list[float]] = defaultdict(list)
    for call in seen.calls:
        if call.reached:
            reached[call.command_id].append(call.timestamp)
    calls = [s.command_id for s in seen.sent if s.non_idempotent and s.command_id]
    repeats = [t for cid in calls for t in sorted(reached[cid])[1:]]
    figures.non_idempotent = len(calls)
    figures.repeated_calls = len(repeats)
    figures.repeat_bound = sum(fault.killed for fault in faults) * in_flight
    _judge_repeats(figures, repeats, faults, in_flight)
    _judge_dead_letters(figures, seen, per_command)

    figures.require(figures.without_result == 0, f"{figures.without_result} without result")
    figures.require(figures.lost == 0, f"{figures.lost} lost")
    bound = figures.repeat_bound
    figures.require(
        figures.duplicate_results <= bound,
        f"{figures.duplicate_results} duplicate results (bound {bound})",
    )
    figures.require(
        figures.repeated_calls <= bound,
        f"{figures.repeated_calls} repeated non-idempotent calls (bound {bound})",
    )
    figures.require(
        figures.dead_letters_ok == figures.dead_letters,
        f"{figures.dead_letters - figures.dead_letters_ok} dead letters with wrong headers",
    )
    _judge_outcomes(figures, seen, allowed)
    _judge_executions(figures, seen)
    _judge_order(figures, seen, faults)


def _judge_repeats(
    figures: Figures, repeats: list[float], faults: list[Fault], in_flight: int
) -> None:
    """Charge each repeated call to the last fault that began before it."""
    charged: Counter[str] = Counter()
    for moment in repeats:
        earlier = [fault.name for fault in faults if fault.since <= moment]
        charged[earlier[-1] if earlier else BEFORE_ANY_FAULT] += 1
    figures.notes["repeated calls per fault"] = dict(charged)
    for fault in [*faults, Fault(BEFORE_ANY_FAULT, 0.0)]:
        bound = in_flight if fault.killed else 0
        figures.require(
            charged[fault.name] <= bound,
            f"{charged[fault.name]} repeated calls after {fault.name} (bound {bound})",
        )


NO_AGENT = "failed (agent_not_found)"


def _outcome_of(result: ResultEvent) -> str:
    """A result's outcome as scenarios allow it: a failure with its code."""
    if result.outcome == "failed" and result.error is not None:
        return f"failed ({result.error.code})"
    return result.outcome


def _judge_outcomes(figures: Figures, seen: Observed, allowed: frozenset[str]) -> None:
    """Only `allowed` outcomes, and `rejected` exactly for the poison records. A command of an
    agent whose `agent.start` never ran at the API (no request of it executed) may also fail
    with `agent_not_found`: there is no agent to speak, call or stop. Where a start ran, the
    agent exists, and not finding it is a violation."""
    poison = {s.command_id for s in seen.sent if s.poison and s.command_id}
    unstarted = {
        s.key
        for s in seen.sent
        if s.operation == "agent.start" and s.command_id not in seen.executed
    }
    agentless = {s.command_id for s in seen.sent if s.key in unstarted and s.command_id}

    def allows(result: ResultEvent) -> frozenset[str]:
        if result.command_id in poison:
            return frozenset({"rejected"})
        if result.command_id in agentless:
            return allowed - {"rejected"} | {NO_AGENT}
        return allowed - {"rejected"}

    unexpected = Counter(
        outcome for result in seen.results if (outcome := _outcome_of(result)) not in allows(result)
    )
    figures.unexpected_outcomes = unexpected.total()
    figures.require(not unexpected, f"outcomes this scenario does not allow: {dict(unexpected)}")


def _judge_executions(figures: Figures, seen: Observed) -> None:
    """Every `succeeded` result stands on a request that executed, or on a reconcile."""
    ours = {s.command_id for s in seen.sent if s.operation}
    figures.succeeded_without_call = sum(
        1
        for result in seen.results
        if result.outcome == "succeeded"
        and not result.reconciled
        and result.command_id in ours
        and result.command_id not in seen.executed
    )
    figures.require(
        figures.succeeded_without_call == 0,
        f"{figures.succeeded_without_call} succeeded without an executed API call",
    )


def _judge_order(figures: Figures, seen: Observed, faults: list[Fault]) -> None:
    """Per key, the requests that reached the API follow its commands' offsets; a step back
    only repeats, after a SIGKILL, a command that had reached the API before it."""
    where = {
        s.command_id: (s.key, offset)
        for s, (_, offset) in zip(seen.sent, seen.places, strict=True)
        if s.operation and s.command_id
    }
    kills = [fault.end for fault in faults if fault.killed]
    highest: dict[bytes, int] = {}
    first: dict[str, float] = {}
    broken = 0
    for call in seen.calls:
        if not call.reached or call.command_id not in where:
            continue
        key, offset = where[call.command_id]
        since = first.setdefault(call.command_id, call.timestamp)
        if offset < highest.get(key, offset):
            broken += not any(since < end <= call.timestamp for end in kills)
        highest[key] = max(highest.get(key, offset), offset)
    figures.out_of_order = broken
    figures.require(broken == 0, f"{broken} calls out of order")


def _judge_dead_letters(figures: Figures, seen: Observed, per_command: Counter[str]) -> None:
    """Dead letters: headers right, one per poison record and per exhausted command, none lost."""
    originals = {(r.partition, r.offset): r for r in seen.originals}
    letters: Counter[tuple[int, int]] = Counter()
    problems: list[str] = []
    for dead in seen.dead:
        headers = dict(dead.headers)
        try:
            place = (int(headers[DLQ_ORIGINAL_PARTITION]), int(headers[DLQ_ORIGINAL_OFFSET]))
            original = originals[place]
        except (KeyError, ValueError):
            problems.append(f"a dead letter that locates no record: {headers}")
            continue
        if found := dead_letter_problems(dead, original):
            problems.append(f"dead letter of {place}: {found}")
        else:
            letters[place] += 1
    figures.dead_letters = len(seen.dead)
    figures.dead_letters_ok = len(seen.dead) - len(problems)
    exhausted = {r.command_id for r in seen.results if r.error and r.error.code == EXHAUSTED}
    expected = [
        place
        for s, place in zip(seen.sent, seen.places, strict=True)
        if s.poison or s.command_id in exhausted
    ]
    figures.dead_letters_expected = len(expected)
    figures.lost = sum(
        1
        for s, place in zip(seen.sent, seen.places, strict=True)
        if not letters[place] and (s.command_id is None or s.command_id not in per_command)
    )
    missing = sum(1 for place in expected if letters[place] != 1)
    figures.require(missing == 0, f"{missing} poison or exhausted records without one dead letter")
    figures.notes["dead letter problems"] = problems[:5]


def recoveries(records: Records, moments: Iterable[float]) -> list[float]:
    """For each moment (Unix seconds): the time until every results partition that has results
    after it has one."""
    appends = _appends(records)
    waits = []
    for moment in moments:
        firsts = [next((t for t in times if t > moment), None) for times in appends.values()]
        waits.append(max((t - moment for t in firsts if t is not None), default=0.0))
    return waits


def longest_stall(records: Records) -> float:
    """The longest time a results partition went without a result, from the first result of
    the run to that partition's last one."""
    appends = _appends(records)
    start = min((times[0] for times in appends.values()), default=0.0)
    gaps = [
        later - earlier
        for times in appends.values()
        for earlier, later in zip([start, *times], times, strict=False)
    ]
    return max(gaps, default=0.0)


def _appends(records: Records) -> dict[int, list[float]]:
    """Append times (seconds) per partition, sorted."""
    appends: dict[int, list[float]] = {}
    for record in records:
        appends.setdefault(record.partition, []).append(record.timestamp / 1000)
    return {p: sorted(times) for p, times in appends.items()}
