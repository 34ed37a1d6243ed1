"""The chaos suite's judge: each broken guarantee becomes a violation, and only those do."""

from __future__ import annotations

from aiokafka import ConsumerRecord

from chaos.calls import Call
from chaos.judge import Fault, Figures, Observed, judge, longest_stall, recoveries
from contracts import ResultEvent
from devtools.workload import Sent
from tests.unit.chaos_records import dead_letter, record, result

SENT = [
    Sent(b"k", b"v0", "a", "agent.start"),
    Sent(b"k", b"v1", "b", "agent.speak"),
    Sent(b"k", b"v2", None, poison="invalid JSON"),
]
ORIGINALS = [record(0, n, value=sent.value) for n, sent in enumerate(SENT)]


def speaks(count: int) -> list[Call]:
    """The start `a` ran at t = 0.5, then `count` requests of the speak `b` reached the API,
    one a second from t = 1."""
    return [Call("a", 0.5, 200)] + [Call("b", float(n), 200) for n in range(1, count + 1)]


def judged(
    results: list[ResultEvent],
    dead: list[ConsumerRecord[bytes, bytes]],
    calls: int | list[Call],
    *,
    faults: list[Fault] | None = None,
    allowed: frozenset[str] = frozenset({"succeeded", "failed (retries_exhausted)"}),
) -> Figures:
    """Judge a hand-made run: `calls` is the attributed request log, or a count for `speaks`."""
    figures = Figures("test", {})
    log = speaks(calls) if isinstance(calls, int) else calls
    seen = Observed(SENT, [(0, n) for n in range(3)], ORIGINALS, results, dead, log)
    judge(figures, seen, faults or [], in_flight=2, allowed=allowed)
    return figures


def test_a_clean_run_breaks_no_guarantee() -> None:
    figures = judged([result("a"), result("b")], [dead_letter(ORIGINALS[2])], 1)
    assert figures.violations == []
    assert (figures.commands, figures.poison, figures.non_idempotent) == (2, 1, 1)
    assert (figures.dead_letters_ok, figures.dead_letters_expected) == (1, 1)


def test_missing_duplicate_and_repeated_work_are_violations() -> None:
    figures = judged([result("b"), result("b")], [], 2)
    assert (figures.without_result, figures.lost) == (1, 2)  # `a`, and the poison record
    assert (figures.duplicate_results, figures.repeated_calls) == (1, 1)
    # the four figures, a repeat without a fault, the missing dead letter
    assert len(figures.violations) == 6


def test_each_sigkill_allows_repeats_up_to_the_in_flight_limit_other_faults_none() -> None:
    letters = [dead_letter(ORIGINALS[2])]
    results = [result("a"), result("b")]
    killed = [Fault("1. SIGKILL", 1.5, killed=True)]
    assert judged(results, letters, 3, faults=killed).violations == []
    assert judged(results, letters, 4, faults=killed).violations == [
        "3 repeated calls after 1. SIGKILL (bound 2)",
        "3 repeated non-idempotent calls (bound 2)",
    ]
    leave = [*killed, Fault("2. SIGTERM", 2.5)]  # the repeat at t = 3 comes after the leave
    assert judged(results, letters, 3, faults=leave).violations == [
        "1 repeated calls after 2. SIGTERM (bound 0)"
    ]
    deploy = [*killed, Fault("2. deploy", 4.0, began=2.5)]  # the repeat at t = 3 came during it
    assert judged(results, letters, 3, faults=deploy).violations == [
        "1 repeated calls after 2. deploy (bound 0)"
    ]
    assert judged(results, letters, 2).violations == [
        "1 repeated calls after the start (bound 0)",
        "1 repeated non-idempotent calls (bound 0)",
    ]


def test_a_dead_letter_must_locate_its_original_and_exhausted_commands_need_one() -> None:
    letters = [dead_letter(ORIGINALS[1]), dead_letter(ORIGINALS[2])]
    figures = judged([result("a"), result("b", "retries_exhausted")], letters, 1)
    assert figures.violations == []
    assert figures.dead_letters_expected == 2  # `b` ran out of retries: it has one too
    figures = judged([result("a"), result("b", "retries_exhausted")], letters[1:], 1)
    assert figures.violations == ["1 poison or exhausted records without one dead letter"]
    wrong = dead_letter(ORIGINALS[2])
    wrong.headers[2] = ("__connect.errors.offset", b"1")
    figures = judged([result("a"), result("b")], [wrong], 1)
    assert figures.dead_letters_ok == 0
    assert figures.lost == 1  # the poison record: no result, no dead letter
    assert len(figures.violations) == 3


def test_outcomes_the_scenario_does_not_allow_are_violations() -> None:
    letters = [dead_letter(ORIGINALS[2])]
    unknown = [result("a"), result("b", "ambiguous_interrupted", outcome="unknown")]
    assert judged(unknown, letters, 1).violations == [
        "outcomes this scenario does not allow: {'unknown': 1}"
    ]
    assert judged(unknown, letters, 1, allowed=frozenset({"succeeded", "unknown"})).violations == []
    conflict = [result("a", "conflict"), result("b")]  # failed, but not out of retries
    assert judged(conflict, letters, 1).violations == [
        "outcomes this scenario does not allow: {'failed (conflict)': 1}"
    ]


def test_agent_not_found_is_allowed_only_when_no_request_of_the_start_ran() -> None:
    letters = [dead_letter(ORIGINALS[0]), dead_letter(ORIGINALS[2])]  # the start ran out of tries
    outcomes = [result("a", "retries_exhausted"), result("b", "agent_not_found")]
    refused = [Call("a", 0.5, 429), Call("a", 0.6, 503)]
    assert judged(outcomes, letters, refused).violations == []
    ran = [Call("a", 0.5, 0), *refused]  # dropped after it ran: the agent exists
    assert judged(outcomes, letters, ran).violations == [
        "outcomes this scenario does not allow: {'failed (agent_not_found)': 1}"
    ]


def test_rejected_is_the_outcome_of_poison_records_and_of_nothing_else() -> None:
    sent = [*SENT, Sent(b"k", b"{}", "p", poison="wrong types")]
    originals = [*ORIGINALS, record(0, 3, value=b"{}")]
    letters = [dead_letter(originals[2]), dead_letter(originals[3])]

    def judge_poison(results: list[ResultEvent]) -> list[str]:
        figures = Figures("test", {})
        seen = Observed(sent, [(0, n) for n in range(4)], originals, results, letters, speaks(1))
        judge(figures, seen, [], in_flight=2, allowed=frozenset({"succeeded", "rejected"}))
        return figures.violations

    rejected = result("p", "invalid", outcome="rejected")
    assert judge_poison([result("a"), result("b"), rejected]) == []
    swapped = [result("a"), result("b", "invalid", outcome="rejected"), result("p")]
    assert judge_poison(swapped) == [
        "outcomes this scenario does not allow: {'rejected': 1, 'succeeded': 1}"
    ]


def test_a_success_needs_a_request_that_executed_or_a_reconcile() -> None:
    letters = [dead_letter(ORIGINALS[2])]
    results = [result("a"), result("b")]
    refused = [Call("a", 0.5, 200), Call("b", 1.0, 503), Call("b", 2.0, 429), Call("b", 3.0, 409)]
    assert judged(results, letters, refused).violations == [
        "1 succeeded without an executed API call"
    ]
    dropped = [Call("a", 0.5, 200), Call("b", 1.0, 0)]  # closed after the operation ran
    assert judged(results, letters, dropped).violations == []
    held = [Call("a", 0.5, 409), Call("b", 1.0, 200)]  # the start found its name taken
    assert judged([result("a", reconciled=True), result("b")], letters, held).violations == []
    assert judged(results, letters, held).succeeded_without_call == 1


def test_calls_must_reach_the_api_in_the_order_of_their_key_s_commands() -> None:
    letters = [dead_letter(ORIGINALS[2])]
    results = [result("a"), result("b")]
    swapped = [Call("b", 1.0, 200), Call("a", 2.0, 200)]
    assert judged(results, letters, swapped).violations == ["1 calls out of order"]
    refused_first = [Call("b", 1.0, 503), Call("a", 2.0, 200), Call("b", 3.0, 200)]
    assert judged(results, letters, refused_first).violations == []  # a 503 did nothing


def test_only_a_sigkill_allows_a_command_to_reach_the_api_again_after_a_later_one() -> None:
    letters = [dead_letter(ORIGINALS[2])]
    results = [result("a"), result("b")]
    again = [Call("a", 1.0, 200), Call("b", 2.0, 200), Call("a", 4.0, 200)]
    killed = [Fault("1. SIGKILL", 3.0, killed=True)]
    assert judged(results, letters, again, faults=killed).violations == []
    leave = [Fault("1. SIGTERM", 3.0)]
    assert judged(results, letters, again, faults=leave).violations == ["1 calls out of order"]
    late = [Call("b", 2.0, 200), Call("a", 4.0, 200)]  # not a repeat: `a` never ran before
    assert judged(results, letters, late, faults=killed).violations == ["1 calls out of order"]


def test_recovery_is_measured_per_partition_and_the_longest_stall_over_the_run() -> None:
    appends = [record(0, n, seconds=s) for n, s in enumerate((10, 11, 20))]
    appends += [record(1, n, seconds=s) for n, s in enumerate((10.5, 12, 13))]
    assert recoveries(appends, [11.5, 30]) == [8.5, 0.0]
    assert longest_stall(appends) == 9.0
