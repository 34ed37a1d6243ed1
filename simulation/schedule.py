"""Fault schedules: what happens to the group, and when, drawn from a seed.

A schedule is a list of `Fault`s at virtual times. Member faults (a join, SIGTERM, a second
signal, SIGKILL) name a member by its index among those alive at that moment; window faults
(Kafka or the API slow or failing) last `duration` seconds; hostile records are produced at
their moment. Faults are drawn so that they overlap: windows are long, and a second signal or a
join often comes while a drain or a revoke is still running.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

MEMBER_FAULTS = ("join", "sigterm", "second_signal", "sigkill")
WINDOW_FAULTS = (
    "kafka_slow",  # produce acknowledgements late (value: seconds)
    "commit_slow",  # commits arrive late (value: seconds)
    "commit_fail",  # commits fail
    "fetch_fail",  # the members' polls fail
    "lookup_fail",  # committed-offset lookups at assignment fail
    "lookup_slow",  # ... or answer late (value: seconds)
    "results_unreadable",  # the results topic cannot be read (the dedupe catch-up fails)
    "api_slow",  # every request takes `value` seconds
    "api_errors",  # a share (`value`) of requests answered 503 without acting
    "api_throttle",  # ... 429 with Retry-After
    "api_timeouts",  # ... acted upon, never answered
    "api_refused",  # ... connection refused
)
HOSTILE = (
    "year_10000",  # a timestamp past what datetime can hold
    "negative_time",  # no timestamp (-1)
    "big",  # a 300 KB command
    "deep",  # nested 100,000 levels deep
    "bad_utf8",  # not UTF-8
    "replay_junk",  # a replay header of garbage
    "colliding_id",  # a new command reusing an id already used
    "null",  # no value
)
# relative weights of what a schedule is made of
WEIGHTS = {
    "join": 4,
    "sigterm": 4,
    "second_signal": 2,
    "sigkill": 1,
    "hostile": 3,
    **dict.fromkeys(WINDOW_FAULTS, 1),
    "kafka_slow": 3,
    "api_slow": 3,
}


@dataclass(frozen=True, slots=True)
class Fault:
    """One thing that happens to the group."""

    at: float
    kind: str
    target: int = 0  # which alive member (modulo their number), for member faults
    duration: float = 0.0  # for window faults
    value: float = 0.0  # latency in seconds or a share of requests, for window faults
    detail: str = ""  # the kind of hostile record

    def describe(self) -> str:
        """One line: `12.30 s sigterm member#1`."""
        text = f"{self.at:6.2f} s {self.kind}"
        if self.kind in MEMBER_FAULTS and self.kind != "join":
            text += f" member#{self.target}"
        if self.duration:
            text += f" for {self.duration:.1f} s"
        if self.value:
            text += f" ({self.value:g})"
        if self.detail:
            text += f" {self.detail}"
        return text


@dataclass(frozen=True, slots=True)
class Schedule:
    """A run's setup and its faults."""

    seed: int
    members: int  # members at the start
    keys: int  # agents of the workload, each a lifecycle of commands
    produce_seconds: float  # the workload is produced over this long
    faults: tuple[Fault, ...]

    def without(self, index: int) -> Schedule:
        """The same schedule without its `index`-th fault (for shrinking)."""
        return replace(self, faults=self.faults[:index] + self.faults[index + 1 :])


def draw(seed: int) -> Schedule:
    """A schedule of overlapping faults from `seed`."""
    rng = random.Random(seed)
    produce_seconds = rng.uniform(10, 30)
    horizon = produce_seconds + 20
    kinds = list(WEIGHTS)
    weights = list(WEIGHTS.values())
    faults = []
    for _ in range(rng.randint(3, 12)):
        kind = rng.choices(kinds, weights)[0]
        at = round(rng.uniform(0.5, horizon), 2)
        faults.append(_fault(rng, kind, at))
        if kind in ("sigterm", "join") and rng.random() < 0.5:
            # the rolling deploy: the next pod joins while this one drains, or the other way
            other = "join" if kind == "sigterm" else "sigterm"
            faults.append(_fault(rng, other, round(at + rng.uniform(0.05, 1.5), 2)))
        if kind == "sigterm" and rng.random() < 0.3:
            faults.append(_fault(rng, "second_signal", round(at + rng.uniform(0.1, 8), 2)))
    faults.sort(key=lambda fault: fault.at)
    return Schedule(
        seed=seed,
        members=rng.randint(1, 3),
        keys=rng.randint(10, 40),
        produce_seconds=round(produce_seconds, 2),
        faults=tuple(faults),
    )


def _fault(rng: random.Random, kind: str, at: float) -> Fault:
    if kind in MEMBER_FAULTS:
        return Fault(at, kind, target=rng.randrange(8))
    if kind == "hostile":
        return Fault(at, kind, detail=rng.choice(HOSTILE))
    duration = round(rng.uniform(1, 15), 1)
    value = {
        "kafka_slow": round(rng.choice((0.2, 1.0, 3.0, 6.0)), 1),
        "commit_slow": round(rng.uniform(0.5, 4), 1),
        "lookup_slow": round(rng.uniform(0.5, 6), 1),
        "api_slow": round(rng.choice((1.0, 3.0, 8.0, 20.0)), 1),
        "api_errors": round(rng.uniform(0.1, 0.8), 2),
        "api_throttle": round(rng.uniform(0.1, 0.8), 2),
        "api_timeouts": round(rng.uniform(0.05, 0.5), 2),
        "api_refused": round(rng.uniform(0.1, 0.8), 2),
    }.get(kind, 0.0)
    return Fault(at, kind, duration=duration, value=value)
