"""What a failed API request means for the command, per operation, as a table.

A failure is described by *conditions*, most specific first: a 404 is `("404", "4xx")`, a 422
that signals a quota `("422:quota", "422", "4xx")`, a 409 after an earlier attempt whose
outcome is in doubt (sent, and not refused by a 429 or a 422-quota) `("409:repeat", "409",
"4xx")`, a refused connection `("connect",)`. The first condition with a row for the
operation, else for any operation (`*`), decides:

- `gone`: the target is not there (404 on stop, hangup, delete). The command is done only if
  the target is known to have existed (the executor knows the agent, or an earlier attempt of
  the same command may have removed it); otherwise it was never there;
- `reconcile`: the thing exists already; look it up. On agent.start and call.start the holder
  of the name is adopted (reported as the command's agent) only when this command may have
  created it (a `409:repeat`, an earlier attempt whose outcome is in doubt; or a holder that
  started after the command was issued, or that the directory records as the command's, as
  after a crash) and only when it matches the command (the same channel; for a call the same
  callee and caller); any other live holder fails the command
  with `conflict`, naming it (`name_taken`); an agent.start whose holder is stopping waits for
  it and joins again. On number.add only a `409:repeat` reconciles (our own import);
- `retry` / `retry_later`: send again after a backoff (`retry_later`: the long quota backoff);
- `fail`: the API refused the command.

A 422 is told apart by its body: a quota when its `reason` is a quota reason
(`ConcurrencyLimitExceeded`, `ResourceQuotaLimitExceeded`) or its reason or detail speaks of a
quota, a concurrency or an exceeded limit; a validation error when its reason is one of the
validation reasons (`InvalidFieldValue`, `MissingRequiredField`, `InvalidRequestBody`,
`unprocessable_content`, ...) or it says anything else. An agent endpoint's 422 with no body at
all keeps the meaning the API documents there ("access limit exceeded"): a quota.

A 409 on number.update is the number being locked by a concurrent change: retried, as the SDK
does.

Non-idempotent operations (speak, think, interrupt, call.start) are re-sent only when the
failure proves the API did not act on the request: the connection was never established, or
the API answered 429 or 422-quota (it refused the request before doing anything). Any other
retryable failure of such an operation becomes `unknown`.

A 2xx is not a failure, whatever its body: the operation ran. A body that is not JSON is kept
as text in the result (`succeeded`) and counted (`convoai_api_unreadable_responses_total`).
An agent.start answered 2xx without an agent id (an empty or unreadable body) is reconciled by
its name: the agent found in the channel is reported, else the outcome is `unknown`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import NamedTuple

from worker.api.errors import (
    ApiConnectError,
    ApiError,
    ApiStatusError,
    ApiTimeoutError,
)

QUOTA_REASONS = frozenset({"ResourceQuotaLimitExceeded", "ConcurrencyLimitExceeded"})
VALIDATION_REASONS = frozenset(
    {
        "InvalidRequest",
        "InvalidRequestBody",
        "MissingRequiredField",
        "InvalidFieldValue",
        "unprocessable_content",
        "invalid_phone_format",
    }
)
QUOTA_WORDS = re.compile(r"quota|concurren|limit ?exceeded|access ?limit", re.IGNORECASE)
AGENT_OPERATIONS = "agent."  # prefix of the operations on agent endpoints (`detail`/`reason`)
ANY = "*"


class Action(StrEnum):
    """What to do after a failed request."""

    GONE = "gone"
    RECONCILE = "reconcile"
    RETRY = "retry"
    RETRY_LATER = "retry_later"
    FAIL = "fail"
    UNKNOWN = "unknown"


class Rule(NamedTuple):
    """A row's verdict; `reason` is the retry reason (metrics label) or the failure's kind."""

    action: Action
    reason: str


POLICY: Mapping[tuple[str, str], Rule] = {
    ("agent.stop", "404"): Rule(Action.GONE, "agent_gone"),
    ("call.hangup", "404"): Rule(Action.GONE, "call_gone"),
    ("number.delete", "404"): Rule(Action.GONE, "number_gone"),
    ("agent.start", "409:repeat"): Rule(Action.RECONCILE, "agent_exists"),
    ("agent.start", "409"): Rule(Action.RECONCILE, "name_taken"),
    ("call.start", "409:repeat"): Rule(Action.RECONCILE, "call_exists"),
    ("call.start", "409"): Rule(Action.RECONCILE, "name_taken"),
    ("number.add", "409:repeat"): Rule(Action.RECONCILE, "number_exists"),
    ("number.update", "409"): Rule(Action.RETRY, "locked"),
    (ANY, "429"): Rule(Action.RETRY, "rate_limited"),
    (ANY, "422:quota"): Rule(Action.RETRY_LATER, "quota"),
    (ANY, "408"): Rule(Action.RETRY, "timeout"),
    (ANY, "5xx"): Rule(Action.RETRY, "server_error"),
    (ANY, "4xx"): Rule(Action.FAIL, "client_error"),
    (ANY, "connect"): Rule(Action.RETRY, "connection"),
    (ANY, "timeout"): Rule(Action.RETRY, "timeout"),
    (ANY, "connection_lost"): Rule(Action.RETRY, "connection"),
}
UNEXPECTED = Rule(Action.FAIL, "unexpected_response")  # 1xx/3xx: no row matches

# Conditions in which the API certainly did not act on the request.
NOT_EXECUTED = frozenset({"connect", "429", "422:quota"})


class Decision(NamedTuple):
    """The policy's verdict on one failure and the condition that decided it."""

    action: Action
    reason: str
    condition: str


def conditions(error: ApiError, *, repeated: bool = False) -> tuple[str, ...]:
    """The failure's conditions, most specific first; `repeated`: an earlier attempt of the
    same command may have reached the API."""
    if isinstance(error, ApiStatusError):
        status = error.status
        specific: list[str] = []
        if status == 409 and repeated:
            specific.append("409:repeat")
        if status == 422 and is_quota(error):
            specific.append("422:quota")
        family = "5xx" if status >= 500 else "4xx" if status >= 400 else "other"
        return (*specific, str(status), family)
    if isinstance(error, ApiConnectError):
        return ("connect",)
    if isinstance(error, ApiTimeoutError):
        return ("timeout",)
    return ("connection_lost",)


def is_quota(error: ApiStatusError) -> bool:
    """Whether a 422 says a quota or concurrency limit was reached (rather than bad input)."""
    if error.reason in QUOTA_REASONS:
        return True
    if error.reason in VALIDATION_REASONS:
        return False
    said = " ".join(text for text in (error.reason, error.detail) if text)
    if said:
        return QUOTA_WORDS.search(said) is not None
    return error.body in (None, "", {}) and error.operation.startswith(AGENT_OPERATIONS)


def decide(
    operation: str, error: ApiError, *, idempotent: bool, repeated: bool = False
) -> Decision:
    """The policy's decision for `error` on `operation`."""
    found = conditions(error, repeated=repeated)
    for condition in found:
        rule = POLICY.get((operation, condition)) or POLICY.get((ANY, condition))
        if rule is not None:
            break
    else:
        rule, condition = UNEXPECTED, found[0]
    resend = rule.action in (Action.RETRY, Action.RETRY_LATER)
    if resend and not idempotent and NOT_EXECUTED.isdisjoint(found):
        return Decision(Action.UNKNOWN, rule.reason, condition)
    return Decision(rule.action, rule.reason, condition)
