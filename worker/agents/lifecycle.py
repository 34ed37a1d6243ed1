"""One agent's life as the worker models it: its phases, and which observation of it wins.

    STARTING ─► RUNNING ⇄ RECOVERING ─► STOPPING ─► STOPPED | FAILED
       │                                   ▲            (retention) ─► forgotten (tombstone)
       └───────────────────────────────────┘

An agent id names one agent instance, and an instance never goes back to an earlier phase: a
STOPPED agent does not run again, a STOPPING one does not recover. Observations of it (command
responses, webhooks, reconciliation; from several workers, late, duplicated, or replayed from
the state topic in any interleaving) are therefore ranked by phase first, then by
`observed_at`, then by a fixed tie-break, and the highest ranked is the agent's state. That
makes the result independent of the order in which observations arrive: a "joined" webhook
delivered after the stop, or an agent.get answer older than a webhook, cannot bring an agent
back. Fields that describe the instance and never change (`app_id`, `name`, `channel`,
`labels`) are kept when the winning observation lacks them.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

import msgspec

from contracts import AgentStateEvent, encode_event


class Phase(IntEnum):
    """Where an agent is in its life; an agent only ever moves to a higher phase."""

    STARTING = 0  # STARTING, IDLE
    LIVE = 1  # RUNNING, RECOVERING, and status names the API may add
    ENDING = 2  # STOPPING
    ENDED = 3  # STOPPED, FAILED


PHASES: Final = {
    "IDLE": Phase.STARTING,
    "STARTING": Phase.STARTING,
    "RUNNING": Phase.LIVE,
    "RECOVERING": Phase.LIVE,
    "STOPPING": Phase.ENDING,
    "STOPPED": Phase.ENDED,
    "FAILED": Phase.ENDED,
}
RESOLVABLE: Final = frozenset({"STARTING", "RUNNING", "RECOVERING"})
"""Statuses of an agent that a name may point at: it is live and holds its name."""

SOURCE_ORDER: Final = {"command": 0, "reconcile": 1, "webhook": 2}
INSTANCE_FIELDS: Final = ("app_id", "name", "channel", "labels")


def phase(status: str) -> Phase:
    """The phase of a status name; unknown names count as live (never as ended)."""
    return PHASES.get(status, Phase.LIVE)


def outranks(new: AgentStateEvent, current: AgentStateEvent) -> bool:
    """Whether `new` describes a later point of the agent's life than `current`."""
    mine, theirs = _rank(new), _rank(current)
    if mine != theirs:
        return mine > theirs
    return encode_event(new) > encode_event(current)  # equal ranks: any fixed order will do


def merge(current: AgentStateEvent | None, new: AgentStateEvent) -> AgentStateEvent:
    """The agent's state once `new` is known: the higher ranked of the two, fields completed."""
    if current is None:
        return new
    if outranks(new, current):
        return _completed(new, current)
    return _completed(current, new)


def _rank(event: AgentStateEvent) -> tuple[Phase, float, int, str]:
    return (
        phase(event.status),
        event.observed_at.timestamp(),
        SOURCE_ORDER.get(event.source, -1),
        event.status,
    )


def _completed(winner: AgentStateEvent, other: AgentStateEvent) -> AgentStateEvent:
    """`winner` with the instance fields it lacks taken from `other`."""
    missing = {
        name: getattr(other, name)
        for name in INSTANCE_FIELDS
        if getattr(winner, name) is None and getattr(other, name) is not None
    }
    return msgspec.structs.replace(winner, **missing) if missing else winner
