"""Every agent the worker knows, in its lifecycle model, and the names that point at live ones.

`AgentDirectory` holds one state per agent, keyed by `(App ID, agent id)` (`worker.agents.
lifecycle` decides which observation wins), and resolves `(App ID, name)` to the newest agent
holding that name that is live (STARTING, RUNNING, RECOVERING); a STOPPING, STOPPED or FAILED
agent is never the answer. The App ID is part of an agent's identity: what one tenant's
commands or webhooks observe is filed under that tenant's App ID, so it can neither reach nor
rename nor stop-mark another tenant's agent that happens to have the same id. The worker feeds
the directory from the compacted agent-state topic (`worker.agents.records`), the executor
applies what its commands observe at once (so the next command on the same key sees it before
the state topic comes round), and webhooks and the reconciler apply what they publish. `due`
finds the agents to forget: stopped ones once the retention has passed since their last
observation, and any agent last seen longer ago than the API's maximum session plus the
retention (it cannot be alive any more), so memory holds only live and recent agents (and, for
one more retention, the last state of each forgotten one, so late news cannot revive it).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import NamedTuple, Protocol

from contracts import AgentStateEvent
from worker.agents.lifecycle import RESOLVABLE, Phase, merge, outranks, phase

MAX_SESSION_SECONDS = 72 * 3600  # the API ends every agent after 72 h

AgentKey = tuple[str, str]
"""(App ID, agent id): the identity of an agent in the directory."""


def agent_key(state: AgentStateEvent) -> AgentKey:
    """The directory key of the agent an observation is about."""
    return state.app_id or "", state.agent_id


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

    def state(self, app_id: str, agent_id: str) -> AgentStateEvent | None:
        """What is known about the agent `agent_id` of `app_id`."""

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
        self._agents: dict[AgentKey, _Entry] = {}
        self._names: dict[tuple[str, str], set[str]] = {}  # (App ID, name) → agent ids
        self._apps: dict[str, set[str]] = {}  # agent id → App IDs it is known (or retired) under
        # (last observation, App ID, agent id) heaps, checked against the current state when
        # popped: every agent, and agents that reached STOPPING or later
        self._lifetimes: list[tuple[float, str, str]] = []
        self._endings: list[tuple[float, str, str]] = []
        # forgotten agents → their last state, kept for another retention: records of theirs
        # still on the way (the topic lags the directory) or late webhooks rank against it
        self._retired: dict[AgentKey, AgentStateEvent] = {}

    def __len__(self) -> int:
        return len(self._agents)

    def preview(self, event: AgentStateEvent) -> Observed:
        """What `observe(event)` would do, without doing it."""
        key = agent_key(event)
        entry = self._agents.get(key)
        if entry is None:
            retired = self._retired.get(key)
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
        key = agent_key(event)
        entry = self._agents.get(key)
        if entry is None:
            if not observed.changed:
                return observed
            entry = self._agents[key] = _Entry(observed.state)
            self._apps.setdefault(key[1], set()).add(key[0])
            self._index(observed.state)
            heapq.heappush(self._lifetimes, (_time(observed.state), *key))
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
            heapq.heappush(self._endings, (_time(observed.state), *key))
        return observed

    def resolve(self, app_id: str, name: str) -> str | None:
        """The id of the newest live agent called `name` in `app_id`."""
        live = [state for state in self._called(app_id, name) if state.status in RESOLVABLE]
        return max(live, key=_newest).agent_id if live else None

    def last_of(self, app_id: str, name: str) -> AgentStateEvent | None:
        """The newest agent known under `name` in `app_id`, in any phase."""
        known = self._called(app_id, name)
        return max(known, key=_newest) if known else None

    def state(self, app_id: str, agent_id: str) -> AgentStateEvent | None:
        """What is known about the agent `agent_id` of `app_id`."""
        entry = self._agents.get((app_id, agent_id))
        return entry.state if entry else None

    def apps_of(self, agent_id: str) -> frozenset[str]:
        """The App IDs `agent_id` is known under, including agents forgotten a retention ago.

        The API gives every agent a unique id, so this is at most one App ID unless someone
        claims another tenant's agent id (a notice signed with the wrong tenant's secret).
        """
        return frozenset(self._apps.get(agent_id, ()))

    def alive(self) -> Iterator[AgentStateEvent]:
        """Agents this worker started that have not ended (the reconciler watches these)."""
        for entry in list(self._agents.values()):
            if entry.ours and phase(entry.state.status) < Phase.ENDED:
                yield entry.state

    def due(self, now: float, retention: float) -> list[AgentStateEvent]:
        """Agents to forget at `now` (Unix seconds): STOPPING or later and not observed for
        `retention` seconds, or not observed for the maximum session plus `retention`."""
        found: dict[AgentKey, AgentStateEvent] = {}
        self._pop_due(self._endings, now - retention, found, since=Phase.ENDING)
        self._pop_due(self._lifetimes, now - retention - MAX_SESSION_SECONDS, found)
        while self._retired:  # in the order forgotten: the oldest first
            key, last = next(iter(self._retired.items()))
            if _time(last) >= now - 2 * retention:  # not forgotten a retention ago yet
                break
            del self._retired[key]
            if key not in self._agents:
                self._drop_app(key)
        return list(found.values())

    def forget(self, app_id: str, agent_id: str) -> None:
        """Drop an agent (its tombstone is being written, or was read).

        Its last state is kept for another retention: the state topic may still hold older
        records of it that this worker has not read yet (the directory learns of commands
        before the topic comes round), and a webhook may arrive late; an observation that
        does not outrank that state does not bring the agent back.
        """
        key = (app_id, agent_id)
        entry = self._agents.pop(key, None)
        if entry is not None:
            self._unindex(entry.state)
            self._retired.pop(key, None)  # to the end of the forgetting order
            self._retired[key] = entry.state

    def forget_ended(self, agent_id: str, now: float) -> bool:
        """Apply a tombstone read from the state topic: drop the agent unless it may be live.

        The topic is keyed by agent id alone, so the tombstone applies to the agent under each
        App ID it is known under. A tombstone is only ever written for an agent that stopped,
        or was last seen longer ago than the maximum session; an agent this worker holds as
        live and recently seen stays. Returns whether nothing of the agent is left.
        """
        kept = False
        for app_id in self.apps_of(agent_id):
            entry = self._agents.get((app_id, agent_id))
            if entry is None:
                continue
            ended = phase(entry.state.status) >= Phase.ENDING
            if not ended and now - _time(entry.state) < MAX_SESSION_SECONDS:
                kept = True
            else:
                self.forget(app_id, agent_id)
        return not kept

    def snapshot(self) -> dict[AgentKey, tuple[str | None, str]]:
        """(App ID, agent id) → (name, status): what two directories must agree on."""
        return {key: (entry.state.name, entry.state.status) for key, entry in self._agents.items()}

    def _called(self, app_id: str, name: str) -> list[AgentStateEvent]:
        return [self._agents[app_id, i].state for i in self._names.get((app_id, name), ())]

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

    def _drop_app(self, key: AgentKey) -> None:
        app_id, agent_id = key
        apps = self._apps.get(agent_id)
        if apps is not None:
            apps.discard(app_id)
            if not apps:
                del self._apps[agent_id]

    def _pop_due(
        self,
        heap: list[tuple[float, str, str]],
        cutoff: float,
        found: dict[AgentKey, AgentStateEvent],
        since: Phase = Phase.STARTING,
    ) -> None:
        """Move agents of `heap` last observed at `cutoff` or before (and in `since` or a later
        phase) into `found`; push the others back with the time of their last observation."""
        while heap and heap[0][0] <= cutoff:
            _, app_id, agent_id = heapq.heappop(heap)
            key = (app_id, agent_id)
            entry = self._agents.get(key)
            if entry is None or key in found or phase(entry.state.status) < since:
                continue
            last = _time(entry.state)
            if last > cutoff:  # observed again since: due later
                heapq.heappush(heap, (last, app_id, agent_id))
            else:
                found[key] = entry.state


def _time(state: AgentStateEvent) -> float:
    return state.observed_at.timestamp()


def _newest(state: AgentStateEvent) -> tuple[float, str]:
    return _time(state), state.agent_id
