"""The outcome policy: each distinct behaviour once; the whole table is in docs/policy.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from contracts import COMMAND_TYPES
from worker.api.errors import (
    ApiConnectError,
    ApiError,
    ApiStatusError,
    ApiTimeoutError,
    ConnectionLostError,
    TransportError,
)
from worker.api.policy import Action, Decision, conditions, decide

ROOT = Path(__file__).resolve().parents[2]
NON_IDEMPOTENT = {"agent.speak", "agent.think", "agent.interrupt", "call.start"}


def status(op: str, code: int, reason: str | None = None) -> ApiStatusError:
    return ApiStatusError(op, code, body={"reason": reason} if reason else None)


def decided(op: str, error: ApiError, *, repeated: bool = False) -> Decision:
    return decide(op, error, idempotent=COMMAND_TYPES[op].idempotent, repeated=repeated)


def test_the_committed_policy_document_is_what_the_table_generates() -> None:
    """docs/policy.md shows every operation's answer to every failure, as the code decides it."""
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate-policy-doc"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr


def test_only_speak_think_interrupt_and_call_start_are_not_idempotent() -> None:
    """These four must not be re-sent once they may have reached the API."""
    assert {op for op, cls in COMMAND_TYPES.items() if not cls.idempotent} == NON_IDEMPOTENT


@pytest.mark.parametrize(
    ("op", "reason"),
    [("agent.stop", "agent_gone"), ("call.hangup", "call_gone"), ("number.delete", "number_gone")],
)
def test_404_on_a_stop_hangup_or_delete_means_the_target_is_gone(op: str, reason: str) -> None:
    """The thing to remove is not there: `gone`, with the target's reason."""
    assert decided(op, status(op, 404, "TaskNotFound")) == Decision(Action.GONE, reason, "404")


def test_404_elsewhere_fails_as_a_client_error() -> None:
    """Reading or speaking to an agent that is not there is a failure."""
    assert decided("agent.speak", status("agent.speak", 404)) == Decision(
        Action.FAIL, "client_error", "4xx"
    )


@pytest.mark.parametrize(
    ("operation", "exists"), [("agent.start", "agent_exists"), ("call.start", "call_exists")]
)
def test_409_on_start_looks_the_holder_up_and_elsewhere_fails(operation: str, exists: str) -> None:
    """A start whose name is taken looks up the holder: as possibly its own only after an
    attempt in doubt (`409:repeat`), else as someone else's (`name_taken`); other 409s are
    refusals."""
    error = status(operation, 409)
    assert decided(operation, error) == Decision(Action.RECONCILE, "name_taken", "409")
    assert decided(operation, error, repeated=True) == Decision(
        Action.RECONCILE, exists, "409:repeat"
    )
    assert decided("agent.update", status("agent.update", 409)).action == Action.FAIL


def test_409_on_number_add_reconciles_only_after_an_ambiguous_attempt() -> None:
    """A repeated import that conflicts is our own earlier import whose answer was lost."""
    error = status("number.add", 409, "phone_number_exists")
    assert decided("number.add", error).action == Action.FAIL
    assert decided("number.add", error, repeated=True) == Decision(
        Action.RECONCILE, "number_exists", "409:repeat"
    )


@pytest.mark.parametrize("reason", ["ConcurrencyLimitExceeded", "ResourceQuotaLimitExceeded"])
def test_a_quota_422_retries_later_even_a_non_idempotent_call(reason: str) -> None:
    """The API refused before acting, so call.start is sent again after the long backoff."""
    assert decided("call.start", status("call.start", 422, reason)) == Decision(
        Action.RETRY_LATER, "quota", "422:quota"
    )


@pytest.mark.parametrize(
    "body",
    [
        {"reason": "AccessLimitExceeded", "detail": "access limit exceeded"},
        {"detail": "too many agents: concurrency limit reached"},
        {"error_type": "quota_exceeded"},
        None,
    ],
    ids=["reason", "detail", "telephony-shape", "no-body"],
)
def test_a_422_whose_body_speaks_of_a_limit_is_a_quota(body: dict[str, str] | None) -> None:
    """Words of a quota in the reason or detail, or no body at all on an agent endpoint (the
    API documents 422 there as "access limit exceeded"), retry later."""
    error = ApiStatusError("agent.speak", 422, body=body)
    assert decided("agent.speak", error) == Decision(Action.RETRY_LATER, "quota", "422:quota")


@pytest.mark.parametrize(
    "body",
    [
        {"reason": "InvalidFieldValue", "detail": "limit exceeded for text"},
        {"reason": "Unexpected", "detail": "properties.tts is required"},
    ],
    ids=["validation-reason", "other-text"],
)
def test_a_422_that_names_bad_input_fails_on_agent_endpoints_too(body: dict[str, str]) -> None:
    """A validation reason wins over any wording; a body that names no limit is not a quota."""
    error = ApiStatusError("agent.start", 422, body=body)
    assert decided("agent.start", error) == Decision(Action.FAIL, "client_error", "4xx")


def test_a_telephony_422_without_a_body_is_a_validation_error() -> None:
    """Only agent endpoints document 422 as a limit; elsewhere it is `unprocessable_content`."""
    assert decided("call.start", status("call.start", 422)).action == Action.FAIL


def test_a_409_on_number_update_is_a_lock_and_retried() -> None:
    """A concurrent change holds the number (`conflict`): sent again, as the SDK does."""
    error = ApiStatusError("number.update", 409, body={"error_type": "conflict"})
    assert decided("number.update", error) == Decision(Action.RETRY, "locked", "409")


def test_429_retries_even_a_non_idempotent_command() -> None:
    """Rate limiting proves the API did nothing, so a speak is sent again."""
    assert decided("agent.speak", status("agent.speak", 429)) == Decision(
        Action.RETRY, "rate_limited", "429"
    )


def test_connection_refused_retries_even_a_non_idempotent_command() -> None:
    """A connection never established proves the API saw nothing."""
    error = ApiConnectError("agent.think", "refused")
    assert decided("agent.think", error) == Decision(Action.RETRY, "connection", "connect")


@pytest.mark.parametrize(
    ("error", "reason", "condition"),
    [
        (ApiStatusError("x", 500), "server_error", "5xx"),
        (ApiStatusError("x", 408), "timeout", "408"),
        (ApiTimeoutError("x", "slow"), "timeout", "timeout"),
        (ConnectionLostError("x", "reset"), "connection", "connection_lost"),
        (TransportError("x", "odd"), "connection", "connection_lost"),
    ],
    ids=["5xx", "408", "timeout", "lost", "transport"],
)
def test_failures_after_the_request_may_have_arrived(
    error: ApiError, reason: str, condition: str
) -> None:
    """They are retried for an idempotent command and make a non-idempotent one `unknown`."""
    assert decided("agent.get", error) == Decision(Action.RETRY, reason, condition)
    assert decided("agent.speak", error) == Decision(Action.UNKNOWN, reason, condition)


def test_other_client_errors_fail() -> None:
    """A 400 ends the command as failed, idempotent or not."""
    for op in ("agent.get", "agent.speak"):
        assert decided(op, status(op, 400)) == Decision(Action.FAIL, "client_error", "4xx")


def test_unexpected_statuses_fail() -> None:
    """A 3xx matches no row (redirects are not followed) and fails."""
    assert decided("agent.get", status("agent.get", 302)) == Decision(
        Action.FAIL, "unexpected_response", "302"
    )


def test_conditions_are_listed_most_specific_first() -> None:
    """A quota 422 and a repeated 409 carry their specific condition before the generic ones."""
    assert conditions(status("agent.start", 422, "ConcurrencyLimitExceeded")) == (
        "422:quota",
        "422",
        "4xx",
    )
    assert conditions(status("number.add", 409), repeated=True) == ("409:repeat", "409", "4xx")
    assert conditions(status("number.add", 409)) == ("409", "4xx")
    assert conditions(status("agent.get", 503)) == ("503", "5xx")
    assert conditions(status("agent.get", 302)) == ("302", "other")
    assert conditions(ApiConnectError("agent.get", "refused")) == ("connect",)


@pytest.mark.parametrize("op", ["agent.get", "agent.list"])
@pytest.mark.parametrize("code", [400, 401, 403, 404, 409, 410, 422])
def test_the_reads_a_name_lookup_makes_are_never_gone_or_reconciled(op: str, code: int) -> None:
    """AgentFinder treats every refusal of its reads as final, so the table must give them none."""
    for repeated in (False, True):
        action = decided(op, status(op, code), repeated=repeated).action
        assert action not in (Action.GONE, Action.RECONCILE)


@pytest.mark.parametrize("op", sorted(COMMAND_TYPES))
def test_no_operation_is_both_gone_and_reconciled(op: str) -> None:
    """The executor's handlers rely on it (`Refusal.expect`): an operation's refusals all mean
    one thing, whatever the status and whether an earlier attempt may have reached the API."""
    refusals = {
        decided(op, status(op, code, reason), repeated=repeated).action
        for code in range(400, 600)
        for reason in (None, "TaskConflict", "ResourceQuotaLimitExceeded")
        for repeated in (False, True)
    } & {Action.GONE, Action.RECONCILE}
    assert len(refusals) <= 1, refusals
