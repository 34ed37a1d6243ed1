"""Fault injection: latency, error replies, 429 bursts, dropped connections, slow responses,
unreadable answers.

Faults are data (`FaultSettings`), set from command-line flags at start and replaced at run time
through `PUT /_emulator/faults`, so a test can script exactly the failure it needs:

    {"latency_ms": 20, "rules": [
        {"operation": "agent.start", "status": 503, "count": 2},
        {"status": 429, "count": 5, "retry_after": 1},
        {"operation": "agent.speak", "status": 502, "execute": true, "count": 1},
        {"action": "drop", "operation": "agent.speak", "execute": true, "count": 1},
        {"action": "garble", "operation": "agent.start", "body": "", "count": 1},
        {"action": "delay", "delay_ms": 3000, "rate": 0.01}]}

The first rule that matches a request (operation, probability `rate`, remaining `count`) applies:
`error` answers with `status`, without performing the operation unless `execute` is true (the
operation ran and the answer says it failed: a gateway's 502 after the service acted); `drop`
reads the request and closes the connection without an answer, after performing the operation
when `execute` is true (the response is lost: the ambiguous case); `garble` performs it and
answers its success status with `body` as text instead of the JSON (empty by default); `delay`
performs it and answers `delay_ms` late.
"""

from __future__ import annotations

import difflib
import random
from typing import Annotated, Literal

import msgspec

from worker.emulator.routes import ROUTES

Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
OPERATIONS = tuple(route.operation for route in ROUTES)


class FaultRule(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One kind of failure and the requests it hits."""

    action: Literal["error", "drop", "garble", "delay"] = "error"
    operation: str | None = None  # e.g. "agent.start"; None hits every operation
    rate: Probability = 1.0
    count: Annotated[int, msgspec.Meta(ge=1)] | None = None  # spent after this many hits
    status: Annotated[int, msgspec.Meta(ge=400, le=599)] = 500
    reason: str | None = None  # `reason` / `error_type` of the error body
    retry_after: NonNegative | None = None  # seconds, sent as `Retry-After`
    delay_ms: NonNegative = 0.0
    execute: bool = False  # error and drop: perform the operation first
    body: str = ""  # garble: the text answered in place of the JSON

    def __post_init__(self) -> None:
        """A misspelt operation would match no request and leave the emulator healthy."""
        if self.operation is not None and self.operation not in OPERATIONS:
            close = difflib.get_close_matches(self.operation, OPERATIONS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"unknown operation {self.operation!r}; {hint}one of {', '.join(OPERATIONS)}"
            )


class FaultSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Everything that makes the emulator misbehave; the default is a healthy service."""

    latency_ms: NonNegative = 0.0
    latency_jitter_ms: NonNegative = 0.0  # uniform extra latency in [0, jitter)
    rules: list[FaultRule] = msgspec.field(default_factory=list)


class Faults:
    """The settings in force plus what is left of each counted rule."""

    def __init__(self, settings: FaultSettings | None = None) -> None:
        self._random = random.Random()  # noqa: S311 - fault sampling, not cryptography
        self.replace(settings or FaultSettings())

    def replace(self, settings: FaultSettings) -> None:
        """Put `settings` in force; counted rules start from their full count."""
        self.settings = settings
        self._remaining = [rule.count for rule in settings.rules]
        self._base = settings.latency_ms / 1000
        self._jitter = settings.latency_jitter_ms / 1000

    def latency(self) -> float:
        """Seconds to wait before answering a request."""
        if self._jitter:
            return self._base + self._random.random() * self._jitter
        return self._base

    def pick(self, operation: str) -> FaultRule | None:
        """The rule that hits this request, if any (consumes one of a counted rule's hits)."""
        for index, rule in enumerate(self.settings.rules):
            if rule.operation is not None and rule.operation != operation:
                continue
            remaining = self._remaining[index]
            if remaining == 0:
                continue
            if rule.rate < 1.0 and self._random.random() >= rule.rate:
                continue
            if remaining is not None:
                self._remaining[index] = remaining - 1
            return rule
        return None

    def snapshot(self) -> dict[str, object]:
        """The settings with each rule's remaining hits, for `GET /_emulator/faults`."""
        data = msgspec.to_builtins(self.settings)
        for rule, remaining in zip(data["rules"], self._remaining, strict=True):
            rule["remaining"] = remaining
        return data  # type: ignore[no-any-return]
