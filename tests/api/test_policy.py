"""The outcome policy, row by row: what each failure means for each operation."""

from __future__ import annotations

import pytest

from contracts import COMMAND_TYPES
from worker.api.errors import (
    ApiConnectError,
    ApiError,
    ApiStatusError,
    ApiTimeoutError,
    ConnectionLostError,
    InvalidResponseError,
    TransportError,
)
from worker.api.policy import ANY, POLICY, Action, Rule, conditions, decide

OPERATIONS = sorted(COMMAND_TYPES)
NON_IDEMPOTENT = {"agent.speak", "agent.think", "agent.interrupt", "call.start"}
IDEMPOTENT = [op for op in OPERATIONS if op not in NON_IDEMPOTENT]
STOP_LIKE = {"agent.stop", "call.hangup", "number.delete"}

# The table as the README's "Delivery guarantees" state it; the test below pins POLICY to
# exactly these rows.
EXPECTED_ROWS = {
    ("agent.stop", "404"): Rule(Action.GONE, "agent_gone"),
    ("call.hangup", "404"): Rule(Action.GONE, "call_gone"),
    ("number.delete", "404"): Rule(Action.GONE, "number_gone"),
    ("agent.start", "409"): Rule(Action.RECONCILE, "agent_exists"),
    ("number.add", "409:repeat"): Rule(Action.RECONCILE, "number_exists"),
    (ANY, "429"): Rule(Action.RETRY, "rate_limited"),
    (ANY, "422:quota"): Rule(Action.RETRY_LATER, "quota"),
    (ANY, "408"): Rule(Action.RETRY, "timeout"),
    (ANY, "5xx"): Rule(Action.RETRY, "server_error"),
    (ANY, "4xx"): Rule(Action.FAIL, "client_error"),
    (ANY, "connect"): Rule(Action.RETRY, "connection"),
    (ANY, "timeout"): Rule(Action.RETRY, "timeout"),
    (ANY, "connection_lost"): Rule(Action.RETRY, "connection"),
    (ANY, "invalid_response"): Rule(Action.RETRY, "server_error"),
}


def status(op: str, code: int, reason: str | None = None) -> ApiStatusError:
    return ApiStatusError(op, code, body={"reason": reason} if reason else None)


def idempotent(op: str) -> bool:
    return COMMAND_TYPES[op].idempotent


def test_table_is_exactly_the_documented_rows() -> None:
    """No row was added, dropped or changed without updating this test."""
    assert dict(POLICY) == EXPECTED_ROWS


def test_command_idempotency_matches_the_issue() -> None:
    """Exactly speak, think, interrupt and call.start are not idempotent."""
    assert {op for op in OPERATIONS if not idempotent(op)} == NON_IDEMPOTENT


@pytest.mark.parametrize("op", OPERATIONS)
def test_404(op: str) -> None:
    """404 is `gone` on stop, hangup and number delete, a failure elsewhere."""
    decision = decide(op, status(op, 404, "TaskNotFound"), idempotent=idempotent(op))
    expected = Action.GONE if op in STOP_LIKE else Action.FAIL
    assert decision.action == expected


@pytest.mark.parametrize("op", OPERATIONS)
def test_409(op: str) -> None:
    """409 reconciles agent.start; elsewhere it fails (number.add: see the repeat case)."""
    decision = decide(op, status(op, 409, "TaskConflict"), idempotent=idempotent(op))
    assert decision.action == (Action.RECONCILE if op == "agent.start" else Action.FAIL)


def test_409_on_number_add_reconciles_only_after_an_ambiguous_attempt() -> None:
    """A repeated import that conflicts is our own earlier import whose answer was lost."""
    error = status("number.add", 409, "phone_number_exists")
    assert decide("number.add", error, idempotent=True).action == Action.FAIL
    repeated = decide("number.add", error, idempotent=True, repeated=True)
    assert (repeated.action, repeated.condition) == (Action.RECONCILE, "409:repeat")


@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize("reason", ["ConcurrencyLimitExceeded", "ResourceQuotaLimitExceeded"])
def test_422_quota_retries_later_for_every_operation(op: str, reason: str) -> None:
    """A quota refusal is retried with the long backoff, even for non-idempotent operations."""
    decision = decide(op, status(op, 422, reason), idempotent=idempotent(op))
    assert (decision.action, decision.reason) == (Action.RETRY_LATER, "quota")


AGENT_ENDPOINTS = [op for op in OPERATIONS if op.startswith("agent.")]
OTHER_ENDPOINTS = [op for op in OPERATIONS if not op.startswith("agent.")]


@pytest.mark.parametrize("op", OTHER_ENDPOINTS)
def test_422_without_a_quota_reason_fails_on_telephony_and_numbers(op: str) -> None:
    """There a 422 is a validation error (`unprocessable_content`): not retried."""
    error = ApiStatusError(op, 422, body={"error_type": "unprocessable_content"})
    assert decide(op, error, idempotent=idempotent(op)).action == Action.FAIL


@pytest.mark.parametrize("op", AGENT_ENDPOINTS)
@pytest.mark.parametrize("reason", [None, "AccessLimitExceeded"])
def test_422_on_agent_endpoints_is_a_quota_whatever_its_reason(op: str, reason: str) -> None:
    """The API documents 422 on agent endpoints only as "access limit exceeded"."""
    decision = decide(op, status(op, 422, reason), idempotent=idempotent(op))
    assert (decision.action, decision.condition) == (Action.RETRY_LATER, "422:quota")


@pytest.mark.parametrize("op", OPERATIONS)
def test_429_retries_every_operation(op: str) -> None:
    """The API refused before acting, so even speak is sent again."""
    decision = decide(op, status(op, 429), idempotent=idempotent(op))
    assert (decision.action, decision.reason) == (Action.RETRY, "rate_limited")


@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_5xx(op: str, code: int) -> None:
    """5xx retries idempotent operations and makes non-idempotent ones `unknown`."""
    decision = decide(op, status(op, code), idempotent=idempotent(op))
    expected = Action.UNKNOWN if op in NON_IDEMPOTENT else Action.RETRY
    assert (decision.action, decision.reason, decision.condition) == (
        expected,
        "server_error",
        "5xx",
    )


@pytest.mark.parametrize("op", OPERATIONS)
def test_408(op: str) -> None:
    """A request timeout answered by the API is treated like a timeout."""
    decision = decide(op, status(op, 408), idempotent=idempotent(op))
    expected = Action.UNKNOWN if op in NON_IDEMPOTENT else Action.RETRY
    assert (decision.action, decision.reason) == (expected, "timeout")


@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize("code", [400, 401, 403, 405, 413])
def test_other_4xx_fail(op: str, code: int) -> None:
    """Any other client error ends the command as failed."""
    decision = decide(op, status(op, code), idempotent=idempotent(op))
    assert (decision.action, decision.reason) == (Action.FAIL, "client_error")


@pytest.mark.parametrize("op", OPERATIONS)
def test_connect_errors_retry_every_operation(op: str) -> None:
    """A connection that was never established proves the API saw nothing."""
    decision = decide(op, ApiConnectError(op, "refused"), idempotent=idempotent(op))
    assert (decision.action, decision.reason) == (Action.RETRY, "connection")


@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ApiTimeoutError("x", "slow"), "timeout"),
        (ConnectionLostError("x", "reset"), "connection"),
        (TransportError("x", "odd"), "connection"),
        (InvalidResponseError("x", 200, "garbage", None), "server_error"),
    ],
)
def test_ambiguous_failures(op: str, error: ApiError, reason: str) -> None:
    """Failures after the request may have arrived: retry if idempotent, else `unknown`."""
    decision = decide(op, error, idempotent=idempotent(op))
    expected = Action.UNKNOWN if op in NON_IDEMPOTENT else Action.RETRY
    assert (decision.action, decision.reason) == (expected, reason)


def test_unexpected_statuses_fail() -> None:
    """A 3xx matches no row (redirects are not followed) and fails."""
    decision = decide("agent.get", status("agent.get", 302), idempotent=True)
    assert (decision.action, decision.reason, decision.condition) == (
        Action.FAIL,
        "unexpected_response",
        "302",
    )


def test_conditions_are_listed_most_specific_first() -> None:
    """A quota 422 and a repeated 409 carry their specific condition before the generic ones."""
    assert conditions(status("agent.start", 422, "ConcurrencyLimitExceeded")) == (
        "422:quota",
        "422",
        "4xx",
    )
    assert conditions(status("number.add", 409), repeated=True) == ("409:repeat", "409", "4xx")
    assert conditions(status("agent.get", 503)) == ("503", "5xx")
    assert conditions(ApiConnectError("agent.get", "refused")) == ("connect",)
