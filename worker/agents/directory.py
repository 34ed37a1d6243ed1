"""Every agent the worker knows, in its lifecycle model, and the names that point at live ones.

`AgentDirectory` holds one state per agent id (`worker.agents.lifecycle` decides which
observation wins) and resolves `(app_id, name)` to the newest agent holding that name that is
live (STARTING, RUNNING, RECOVERING); a STOPPING, STOPPED or FAILED agent is never the answer.
The worker feeds it from the compacted agent-state topic (`worker.agents.records`), the
executor applies what its commands observe at once (so the next command on the same key sees
it before the state topic comes round), and webhooks and the reconciler apply what they
publish. `due` finds the agents to forget: stopped ones once the retention has passed since
their last observation, and any agent last seen longer ago than the API's maximum session plus
the retention (it cannot be alive any more), so memory holds only live and recent agents (and,
for one more retention, the last state of each forgotten one, so late news cannot revive it).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import NamedTuple, Protocol

from contracts import AgentStateEvent
from worker.agents.lifecycle import RESOLVABLE, Phase, merge, outranks, phase

MAX_SESSION_SECONDS = 72 * 3600  # the API ends every agent after 72 h


class Observed(NamedTuple):
    """What an observation did to the directory.

    `state` is the agent's state with it; `won` says the observation is that state (nothing
    newer was known); `changed` says its status differs from the one known before, which is
    what makes an observation worth publishing.
    """

    state: AgentStateEvent
    won: bool
    changed: bool


class NameDirectory(Protocol):
    """What the executor reads and records about agents."""

    def resolve(self, app_id: str, name: str) -> str | None:
        """The id of the newest live agent called `name` in `app_id`."""

    def last_of(self, app_id: str, name: str) -> AgentStateEvent | None:
        """The newest agent known under `name` in `app_id`, in any phase."""

    def state(self, agent_id: str) -> AgentStateEvent | None:
        """What is known about an agent."""

    def observe(self, event: AgentStateEvent, *, ours: bool = False) -> Observed:
        """Apply an observation; `ours`: this worker started the agent."""


class _Entry:
    __slots__ = ("ours", "state")

    def __init__(self, state: AgentStateEvent) -> None:
        self.state = state
        self.ours = False


class AgentDirectory:
    """In-memory lifecycle model of agents; implements `NameDirectory`."""

    def __init__(self) -> None:
        self._agents: dict[str, _Entry] = {}
        self._names: dict[tuple[str, str], set[str]] = {}
        # (last observation, agent id) heaps, checked against the current state when popped:
        # every agent, and agents that reached STOPPING or later
        self._lifetimes: list[tuple[float, str]] = []
        self._endings: list[tuple[float, str]] = []
        # forgotten agents → their last state, kept for another retention: records of theirs
        # still on the way (the topic lags the directory) or late webhooks rank against it
        self._retired: dict[str, AgentStateEvent] = {}

    def __len__(self) -> int:
        return len(self._agents)

    def preview(self, event: AgentStateEvent) -> Observed:
        """What `observe(event)` would do, without doing it."""
        entry = self._agents.get(event.agent_id)
        if entry is None:
            retired = self._retired.get(event.agent_id)
            if retired is None:
                return Observed(event, won=True, changed=True)
            if not outranks(event, retired):
                return Observed(event, won=True, changed=False)  # old news of a forgotten agent
            return Observed(merge(retired, event), won=True, changed=True)
        current = entry.state
        won = not outranks(current, event)
        state = merge(current, event)
        return Observed(state, won, changed=won and state.status != current.status)

    def observe(self, event: AgentStateEvent, *, ours: bool = False) -> Observed:
        """Apply an observation of an agent (from a command, the state topic, a webhook...)."""
        observed = self.preview(event)
        entry = self._agents.get(event.agent_id)
        if entry is None:
            if not observed.changed:
                return observed
            entry = self._agents[event.agent_id] = _Entry(observed.state)
            self._index(observed.state)
            heapq.heappush(self._lifetimes, (_time(observed.state), event.agent_id))
            previous_phase = None
        else:
            previous_phase = phase(entry.state.status)
            if observed.state != entry.state:
                self._unindex(entry.state)
                entry.state = observed.state
                self._index(observed.state)
        entry.ours = entry.ours or ours
        ending = phase(observed.state.status) >= Phase.ENDING
        if ending and (previous_phase is None or previous_phase < Phase.ENDING):
            heapq.heappush(self._endings, (_time(observed.state), event.agent_id))
        return observed

    def resolve(self, app_id: str, name: str) -> str | None:
        """The id of the newest live agent called `name` in `app_id`."""
        live = [state for state in self._called(app_id, name) if state.status in RESOLVABLE]
        return max(live, key=_newest).agent_id if live else None

    def last_of(self, app_id: str, name: str) -> AgentStateEvent | None:
        """The newest agent known under `name` in `app_id`, in any phase."""
        known = self._called(app_id, name)
        return max(known, key=_newest) if known else None

    def state(self, agent_id: str) -> AgentStateEvent | None:
        """What is known about an agent."""
        entry = self._agents.get(agent_id)
        return entry.state if entry else None

    def alive(self) -> Iterator[AgentStateEvent]:
        """Agents this worker started that have not ended (the reconciler watches these)."""
        for entry in list(self._agents.values()):
            if entry.ours and phase(entry.state.status) < Phase.ENDED:
                yield entry.state

    def due(self, now: float, retention: float) -> list[AgentStateEvent]:
        """Agents to forget at `now` (Unix seconds): STOPPING or later and not observed for
        `retention` seconds, or not observed for the maximum session plus `retention`."""
        found: dict[str, AgentStateEvent] = {}
        self._pop_due(self._endings, now - retention, found, since=Phase.ENDING)
        self._pop_due(self._lifetimes, now - retention - MAX_SESSION_SECONDS, found)
        while self._retired:  # in the order forgotten: the oldest first
            agent_id, last = next(iter(self._retired.items()))
            if _time(last) >= now - 2 * retention:  # not forgotten a retention ago yet
                break
            del self._retired[agent_id]
        return list(found.values())

    def forget(self, agent_id: str) -> None:
        """Drop an agent (its tombstone is being written, or was read).

        Its last state is kept for another retention: the state topic may still hold older
        records of it that this worker has not read yet (the directory learns of commands
        before the topic comes round), and a webhook may arrive late; an observation that
        does not outrank that state does not bring the agent back.
        """
        entry = self._agents.pop(agent_id, None)
        if entry is not None:
            self._unindex(entry.state)
            self._retired.pop(agent_id, None)  # to the end of the forgetting order
            self._retired[agent_id] = entry.state

    def forget_ended(self, agent_id: str, now: float) -> bool:
        """Apply a tombstone read from the state topic: drop the agent unless it may be live.

        A tombstone is only ever written for an agent that stopped, or was last seen longer ago
        than the maximum session; an agent this worker holds as live and recently seen stays.
        """
        entry = self._agents.get(agent_id)
        if entry is None:
            return True
        ended = phase(entry.state.status) >= Phase.ENDING
        if not ended and now - _time(entry.state) < MAX_SESSION_SECONDS:
            return False
        self.forget(agent_id)
        return True

    def snapshot(self) -> dict[str, tuple[str | None, str | None, str]]:
        """agent id → (app id, name, status): what two directories must agree on."""
        return {
            agent_id: (entry.state.app_id, entry.state.name, entry.state.status)
            for agent_id, entry in self._agents.items()
        }

    def _called(self, app_id: str, name: str) -> list[AgentStateEvent]:
        return [self._agents[i].state for i in self._names.get((app_id, name), ())]

    def _index(self, state: AgentStateEvent) -> None:
        if state.name:
            self._names.setdefault((state.app_id or "", state.name), set()).add(state.agent_id)

    def _unindex(self, state: AgentStateEvent) -> None:
        if not state.name:
            return
        key = (state.app_id or "", state.name)
        ids = self._names.get(key)
        if ids is not None:
            ids.discard(state.agent_id)
            if not ids:
                del self._names[key]

    def _pop_due(
        self,
        heap: list[tuple[float, str]],
        cutoff: float,
        found: dict[str, AgentStateEvent],
        since: Phase = Phase.STARTING,
    ) -> None:
        """Move agents of `heap` last observed at `cutoff` or before (and in `since` or a later
        phase) into `found`; push the others back with the time of their last observation."""
        while heap and heap[0][0] <= cutoff:
            _, agent_id = heapq.heappop(heap)
            entry = self._agents.get(agent_id)
            if entry is None or agent_id in found or phase(entry.state.status) < since:
                continue
            last = _time(entry.state)
            if last > cutoff:  # observed again since: due later
                heapq.heappush(heap, (last, agent_id))
            else:
                found[agent_id] = entry.state


def _time(state: AgentStateEvent) -> float:
    return state.observed_at.timestamp()


def _newest(state: AgentStateEvent) -> tuple[float, str]:
    return _time(state), state.agent_id
