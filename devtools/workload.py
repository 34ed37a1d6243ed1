"""What the benchmarks, the chaos suite, the simulation and the tests send: speaks, agent
lifecycles over many keys, and poison records of every kind.

Every non-idempotent command carries a value unique to it in its request body (a speak's
`text` and a call's `name` are the command id), so a request log shows how often each one
reached the API (`chaos.calls`, `simulation.invariants`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec


def agent_properties(channel: str) -> dict[str, Any]:
    """Minimal valid join properties."""
    return {
        "channel": channel,
        "token": "rtc-token",
        "agent_rtc_uid": "1",
        "remote_rtc_uids": ["2"],
        "llm": {"url": "https://llm.invalid/v1/chat/completions", "api_key": "llm-key"},
        "tts": {"vendor": "microsoft", "params": {"key": "tts-key", "region": "eastus"}},
    }


def speaks(prefix: str, count: int, agents: int) -> list[dict[str, Any]]:
    """`count` speak commands over `agents` agent ids; each text is the command id."""
    return [
        {
            "command": "agent.speak",
            "id": f"{prefix}-{i}",
            "agent_id": f"{prefix}-agent-{i % agents}",
            "text": f"{prefix}-{i}",
        }
        for i in range(count)
    ]


# the non-idempotent operations produced here: not re-sent once they may have reached the API
NON_IDEMPOTENT = frozenset({"agent.speak", "call.start"})
HUGE_BYTES = 1_000_000  # ~1 MiB: the broker takes it, its dead letter (with headers) is cut


@dataclass(frozen=True, slots=True)
class Sent:
    """One produced record and what must come of it."""

    key: bytes
    value: bytes | None
    command_id: str | None  # the id its result carries; None when it has no usable id
    operation: str | None = None  # the API operation it performs; None for poison records
    poison: str | None = None  # the kind of poison record

    @property
    def record(self) -> tuple[bytes, bytes | None]:
        return self.key, self.value

    @property
    def non_idempotent(self) -> bool:
        return self.operation in NON_IDEMPOTENT


def lifecycles(prefix: str, keys: int, per_key: int) -> list[Sent]:
    """Per key (an agent name): start, speaks, one outbound call, more speaks, stop.

    `per_key` commands per key (at least 4), interleaved across keys step by step the way
    independent producers would write them; the call is keyed by its agent's key too.
    """
    kinds = ["agent.start", *["agent.speak"] * (per_key - 3), "agent.stop"]
    kinds.insert(len(kinds) // 2, "call.start")
    return [
        _step(kind, f"{prefix}-{k}", f"{prefix}-{k}-{step}", k)
        for step, kind in enumerate(kinds)
        for k in range(keys)
    ]


def _step(kind: str, name: str, command_id: str, k: int) -> Sent:
    """One command of agent `name` (the `k`-th); non-idempotent ones carry their id in the body."""
    command: dict[str, Any] = {"command": kind, "id": command_id, "name": name}
    if kind == "agent.start":
        command["properties"] = agent_properties(name)
    elif kind == "agent.speak":
        command["text"] = command_id
    elif kind == "call.start":
        sip = {"to_number": f"+1415{k:07d}", "from_number": "+14155550100"}
        sip |= {"rtc_uid": "100", "rtc_token": "rtc-token"}
        command |= {"name": command_id, "sip": sip, "properties": agent_properties(command_id)}
    return Sent(name.encode(), msgspec.json.encode(command), command_id, kind)


def poison(kind: str, poison_id: str, name: str) -> tuple[bytes | None, str | None]:
    """A poison record's value and the id its `rejected` result carries (None: no result)."""
    speak = {"command": "agent.speak", "id": poison_id, "name": name}
    encode = msgspec.json.encode
    make: dict[str, Callable[[], tuple[bytes | None, str | None]]] = {
        "invalid JSON": lambda: (b'{"command": "agent.speak", "id": "' + poison_id.encode(), None),
        "wrong types": lambda: (encode({**speak, "text": 7}), poison_id),
        "unknown command": lambda: (encode({"command": "agent.fly", "id": poison_id}), poison_id),
        "oversize text": lambda: (encode({**speak, "text": "x" * 600}), poison_id),
        "empty id": lambda: (encode({**speak, "id": "", "text": "hi"}), None),
        "null value": lambda: (None, None),
        "non-UTF-8": lambda: (b'{"command": "agent.list", "id": "\xff\xfe"}', None),
        "~1 MiB": lambda: (encode({**speak, "text": "x" * HUGE_BYTES}), poison_id),
    }
    return make[kind]()


POISON_KINDS = (
    "invalid JSON",
    "wrong types",
    "unknown command",
    "oversize text",
    "empty id",
    "null value",
    "non-UTF-8",
    "~1 MiB",
)


def with_poison(sent: list[Sent], rate: float, seed: int) -> list[Sent]:
    """`sent` with poison records inserted at seeded positions (`rate` of the total, every
    kind in turn), each keyed like the good command it follows."""
    rng = random.Random(seed)
    count = max(len(POISON_KINDS), round(len(sent) * rate))
    positions = sorted(rng.sample(range(len(sent)), count))
    out = list(sent)
    for n, at in reversed(list(enumerate(positions))):
        kind = POISON_KINDS[n % len(POISON_KINDS)]
        neighbour = sent[at]
        value, command_id = poison(kind, f"poison-{n}", neighbour.key.decode())
        out.insert(at + 1, Sent(neighbour.key, value, command_id, poison=kind))
    return out
