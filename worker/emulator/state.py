"""The emulated service's agents and calls, and the rules that govern them.

Statuses are derived from timestamps instead of timers: an agent is STARTING until
`start_delay` has passed, then RUNNING; after a stop it is STOPPING for `stop_delay`, then
STOPPED. What happens to agents by themselves (an idle exit, a failure, a call nobody answers)
is a heap of due times settled at the start of each request, so a request stays O(log n)
whatever the number of agents, which matters when a benchmark starts hundreds of thousands of
them. Rules `docs/api-reference.md` documents are enforced here: 409 `TaskConflict` for a name
held by an agent that has not finished stopping (the API processes a stop asynchronously, so by
default a stop takes `DEFAULT_STOP_DELAY`; with `Rules.name_reuse == "never"`, for any name used
before), 404 for unknown or stopped agents, 422 above the per-App-ID concurrency limit, speak
refused for an agent running an `mllm`, and list cursors that must name an agent of the listing
(a stale or unknown cursor is an error, not page 1 again). `worker.emulator.rules` says how
strict the rest is. Phone numbers live in `worker.emulator.numbers`.
"""

from __future__ import annotations

import heapq
import itertools
import random
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Protocol

from worker.emulator import validation as v
from worker.emulator.errors import EmulatedError, InvalidBodyError, not_found
from worker.emulator.joins import check_join, uses_mllm
from worker.emulator.numbers import PhoneNumbers
from worker.emulator.rules import Rules

STATUS_CODES = {"IDLE": 0, "STARTING": 1, "RUNNING": 2, "STOPPING": 3, "STOPPED": 4, "FAILED": 6}
DEFAULT_START_DELAY = 1.0  # seconds an agent stays STARTING after its join
DEFAULT_STOP_DELAY = 1.0  # seconds an agent stays STOPPING after leave
DEFAULT_IDLE_TIMEOUT = 30  # `properties.idle_timeout` when a join leaves it out
FINAL_STATUSES = frozenset({"STOPPED", "FAILED"})
SPEAK_PRIORITIES = frozenset({"INTERRUPT", "APPEND", "IGNORE"})
THINK_ACTIONS = frozenset({"inject", "interrupt", "ignore", "append"})
QUOTA_REASON = "ConcurrencyLimitExceeded"
MAX_TEXT_BYTES = 512
MAX_TURNS = 200
DEFAULT_MAX_HISTORY = 32
AGENT_LIST_WINDOW = 2 * 3600.0  # the list endpoint's default `from_time`: two hours ago
CALL_LIST_WINDOW = 60 * 86400.0  # the call list's default: sixty days ago

Happening = Literal["idle", "failure", "busy", "no_answer"]
"""What ends an agent by itself at a due time (`EmulatorState._settle`)."""
ENDINGS: dict[Happening, tuple[str, str]] = {
    "idle": ("STOPPED", "Idle for too long"),
    "failure": ("FAILED", "RTC connection error"),
    "busy": ("FAILED", "Callee busy"),
    "no_answer": ("FAILED", "No answer"),
}


class Notifier(Protocol):
    """Receives lifecycle events (the webhook sender); `at` is when the event happens."""

    def joined(self, agent: Agent, at: float) -> None: ...
    def left(self, agent: Agent, at: float) -> None: ...
    def failed(self, agent: Agent, errors: list[dict[str, Any]]) -> None: ...


class SilentNotifier:
    """The notifier when no webhook URL is configured."""

    def joined(self, agent: Agent, at: float) -> None:
        """Nothing to deliver."""

    def left(self, agent: Agent, at: float) -> None:
        """Nothing to deliver."""

    def failed(self, agent: Agent, errors: list[dict[str, Any]]) -> None:
        """Nothing to deliver."""


class Agent:
    """One agent instance; its status at any moment follows from its timestamps."""

    __slots__ = (
        "agent_id",
        "app_id",
        "call",
        "channel",
        "created",
        "final_status",
        "history",
        "idle_timeout",
        "labels",
        "last_active",
        "max_history",
        "message",
        "mllm",
        "name",
        "running_at",
        "stop_at",
        "turns",
        "turns_total",
    )

    def __init__(
        self,
        app_id: str,
        name: str,
        properties: dict[str, Any],
        created: float,
        start_delay: float,
        *,
        agent_id: str,
    ) -> None:
        self.agent_id = agent_id
        self.app_id = app_id
        self.name = name
        self.channel: str = properties.get("channel", "")
        labels = properties.get("labels")
        self.labels: dict[str, Any] = labels if isinstance(labels, dict) else {}
        self.mllm = uses_mllm(properties)
        llm = properties.get("llm")
        max_history = llm.get("max_history") if isinstance(llm, dict) else None
        self.max_history = max_history if type(max_history) is int else DEFAULT_MAX_HISTORY
        idle_timeout = properties.get("idle_timeout")
        self.idle_timeout = idle_timeout if type(idle_timeout) is int else DEFAULT_IDLE_TIMEOUT
        self.created = created
        self.last_active = created
        self.running_at = created + start_delay
        self.stop_at: float | None = None
        self.final_status = "STOPPED"
        self.message = ""
        # allocated on first use: most agents of a benchmark never speak
        self.history: deque[dict[str, Any]] | None = None
        self.turns: deque[dict[str, Any]] | None = None
        self.turns_total = 0
        self.call: Call | None = None

    def status(self, now: float) -> str:
        """STARTING, RUNNING, STOPPING, STOPPED or FAILED at time `now`."""
        if self.stop_at is not None:
            return self.final_status if now >= self.stop_at else "STOPPING"
        return "RUNNING" if now >= self.running_at else "STARTING"

    @property
    def live(self) -> bool:
        """Not asked to stop: it counts against the concurrency limit."""
        return self.stop_at is None

    def remember(self, role: str, content: str) -> None:
        """Add a history entry (the last `max_history` are kept)."""
        if self.history is None:
            self.history = deque(maxlen=max(1, self.max_history))
        self.history.append({"role": role, "content": content})

    def add_turn(self, now: float, kind: str, duration_ms: int) -> None:
        """Record a turn the way the turns endpoint reports it (the last 200 are kept)."""
        if self.turns is None:
            self.turns = deque(maxlen=MAX_TURNS)
        self.turns_total += 1
        start_ms = int(now * 1000)
        self.turns.append(
            {
                "agent_id": self.agent_id,
                "channel": self.channel,
                "turn_id": self.turns_total,
                "start": {"start_at": start_ms, "type": kind, "metadata": {"transport": "http"}},
                "end": {
                    "end_at": start_ms + duration_ms,
                    "type": "ok",
                    "metadata": {"playback_duration_ms": duration_ms},
                },
                "metrics": {"e2e_latency_ms": 0, "segmented_latency_ms": []},
            }
        )


class Call:
    """A SIP call and the agent it created: outbound (rings, then is answered, busy or not
    answered) or inbound (answered by the agent at once)."""

    __slots__ = (
        "agent",
        "ended",
        "from_number",
        "kind",
        "pipeline_id",
        "reason",
        "rings_until",
        "stop_ts",
        "to_number",
    )

    def __init__(
        self,
        agent: Agent,
        to_number: str,
        from_number: str,
        pipeline_id: str | None,
        *,
        kind: Literal["inbound", "outbound"] = "outbound",
        rings_until: float = 0.0,
    ) -> None:
        self.agent = agent
        self.to_number = to_number
        self.from_number = from_number
        self.pipeline_id = pipeline_id
        self.kind = kind
        self.rings_until = rings_until
        self.ended = False
        self.reason = ""
        self.stop_ts = 0

    def state(self, now: float) -> str:
        """`ringing` until the callee answers, then `answered`; `hangup` once over."""
        if self.ended:
            return "hangup"
        return "ringing" if now < self.rings_until else "answered"

    def item(self, now: float) -> dict[str, Any]:
        """The call as the list endpoint reports it."""
        return {
            "to_number": self.to_number,
            "from_number": self.from_number,
            "pipeline_id": self.pipeline_id,
            "type": self.kind,
            "agent_id": self.agent.agent_id,
            "channel": self.agent.channel,
            "create_ts": int(self.agent.created),
            "state": self.state(now),
            "stop_ts": self.stop_ts,
        }

    def end(self, reason: str, now: float) -> None:
        """The call is over (`request`: we hung up; `hangup`: the other party did; `failed`:
        it never connected or broke)."""
        self.ended = True
        self.reason = reason
        self.stop_ts = int(now)


class EmulatorState:
    """All data of one emulator instance, with one method per API operation."""

    def __init__(
        self,
        *,
        rules: Rules | None = None,
        start_delay: float = DEFAULT_START_DELAY,
        stop_delay: float = DEFAULT_STOP_DELAY,
        max_agents_per_app: int = 20,
        retain_stopped: int = 10_000,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: secrets.token_hex(12).upper(),
        draw: Callable[[], float] | None = None,
    ) -> None:
        """`clock`, `new_id` (agent ids) and `draw` (the failure lottery) are for runs that must
        repeat exactly."""
        self.rules = rules or Rules()
        self.start_delay = start_delay
        self.stop_delay = stop_delay
        self.max_agents_per_app = max_agents_per_app
        self.notifier: Notifier = notifier or SilentNotifier()
        self._retain_stopped = retain_stopped
        self._clock = clock
        self._new_id = new_id
        self._draw = draw or random.Random().random  # noqa: S311 - a fault lottery
        self._agents: dict[str, dict[str, Agent]] = {}  # app_id -> agent_id -> agent
        self._names: dict[tuple[str, str], Agent] = {}  # (app_id, name) -> latest agent
        self._live: dict[str, int] = {}  # app_id -> agents not asked to stop
        self._stopped: deque[Agent] = deque()
        # (due time, sequence, what happens, agent): endings that happen by themselves
        self._due: list[tuple[float, int, Happening, Agent]] = []
        self._sequence = itertools.count()
        self.numbers = PhoneNumbers()

    def reset(self) -> None:
        """Forget every agent, call and phone number."""
        self._agents.clear()
        self._names.clear()
        self._live.clear()
        self._stopped.clear()
        self._due.clear()
        self.numbers.clear()

    # ------------------------------------------------------------------ agents

    def start_agent(self, app_id: str, body: Any) -> dict[str, Any]:
        """POST /join: create an agent, or 409/422 by the documented rules."""
        now = self._now()
        body = v.as_object(body)
        name = v.required_str(body, "name")
        properties = v.required_object(body, "properties")
        self._check_properties(properties)
        v.optional(body, "preset", str)
        v.optional(body, "pipeline_id", str)
        if self.rules.validate_join:
            check_join(body, properties)
        agent = self._create_agent(app_id, name, properties, "agent", now)
        return {
            "agent_id": agent.agent_id,
            "create_ts": int(agent.created),
            "status": agent.status(now),
        }

    def list_agents(self, app_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        """GET /agents: filter by channel, time window and state codes; cursor paging."""
        now = self._now()
        from_time = v.query_float(query, "from_time", now - AGENT_LIST_WINDOW)
        to_time = v.query_float(query, "to_time", now)
        limit = v.query_int(query, "limit", 20, 1)
        channel = query.get("channel")
        codes = self._state_codes(query.get("state", "2"))
        agents = self._after_cursor(self._agents.get(app_id, {}), query.get("cursor"))
        matching = [
            (agent, status)
            for agent in agents
            if from_time <= agent.created <= to_time
            and (channel is None or agent.channel == channel)
            and STATUS_CODES[status := agent.status(now)] in codes
        ]
        page = matching[:limit]
        rest = matching[limit : limit + 1]
        items = [
            {"start_ts": int(a.created), "status": status, "agent_id": a.agent_id}
            for a, status in page
        ]
        return {
            "data": {"count": len(items), "list": items},
            "meta": {"cursor": rest[0][0].agent_id if rest else "", "total": len(matching)},
            "status": "ok",
        }

    def get_agent(self, app_id: str, agent_id: str) -> dict[str, Any]:
        """GET /agents/{id}: any agent still remembered, stopped ones included; `name` only
        when `Rules.name_in_get`."""
        now = self._now()
        agent = self._agent(app_id, agent_id, now)
        answer = {
            "message": agent.message,
            "start_ts": int(agent.created),
            "stop_ts": int(agent.stop_at) if agent.stop_at is not None else 0,
            "status": agent.status(now),
            "agent_id": agent.agent_id,
        }
        if self.rules.name_in_get:
            answer["name"] = agent.name
        return answer

    def agent_history(self, app_id: str, agent_id: str) -> dict[str, Any]:
        """GET /history: only for a running agent."""
        now = self._now()
        agent = self._agent(app_id, agent_id, now)
        if agent.status(now) != "RUNNING":
            raise not_found("agent", f"agent {agent_id} is not running")
        return {
            "agent_id": agent.agent_id,
            "start_ts": int(agent.created),
            "status": "RUNNING",
            "contents": list(agent.history or ()),
        }

    def agent_turns(self, app_id: str, agent_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        """GET /turns: pages of `page_size` (10-200) turns, running or stopped agents."""
        agent = self._agent(app_id, agent_id, self._now())
        page_index = v.query_int(query, "page_index", 1, 1)
        page_size = v.query_int(query, "page_size", 50, 10, 200)
        turns = list(agent.turns or ())
        total_pages = max(1, -(-len(turns) // page_size))
        start = (page_index - 1) * page_size
        return {
            "agent_id": agent.agent_id,
            "name": agent.name,
            "channel": agent.channel,
            "total_turn_count": agent.turns_total,
            "pagination": {
                "page_index": page_index,
                "total_pages": total_pages,
                "is_last_page": page_index >= total_pages,
            },
            "turns": turns[start : start + page_size],
        }

    def stop_agent(self, app_id: str, agent_id: str) -> dict[str, Any]:
        """POST /leave: 404 when unknown or already stopping/stopped."""
        now = self._now()
        agent = self._agent(app_id, agent_id, now)
        if not agent.live:
            raise not_found("agent", f"agent {agent_id} has already exited")
        self._stop(agent, now, "STOPPED", "OK")
        if agent.call is not None:
            agent.call.end("request", now)
        return {}

    def update_agent(self, app_id: str, agent_id: str, body: Any) -> dict[str, Any]:
        """POST /update: `properties` (optional) must be an object."""
        now = self._now()
        agent = self._live_agent(app_id, agent_id, now)
        v.optional(v.as_object(body), "properties", dict)
        return {
            "agent_id": agent.agent_id,
            "create_ts": int(agent.created),
            "status": agent.status(now),
        }

    def speak(self, app_id: str, agent_id: str, body: Any) -> dict[str, Any]:
        """POST /speak: text of at most 512 bytes; recorded in history and turns."""
        now = self._now()
        agent = self._live_agent(app_id, agent_id, now)
        if agent.mllm:
            raise EmulatedError(400, "NotImplemented", "speak is not supported with mllm")
        body = v.as_object(body)
        text = v.required_str(body, "text")
        if len(text.encode()) > MAX_TEXT_BYTES:
            raise InvalidBodyError("InvalidFieldValue", "text must be at most 512 bytes")
        v.one_of(body, "priority", SPEAK_PRIORITIES)
        v.optional(body, "interruptable", bool)
        agent.remember("assistant", text)
        agent.add_turn(now, "api_speak", 60 * len(text))
        return {"agent_id": agent.agent_id, "channel": agent.channel, "start_ts": int(now)}

    def interrupt(self, app_id: str, agent_id: str, body: Any) -> dict[str, Any]:
        """POST /interrupt: no body, `{}` or any object."""
        now = self._now()
        agent = self._live_agent(app_id, agent_id, now)
        if body is not None:
            v.as_object(body)
        return {"agent_id": agent.agent_id, "channel": agent.channel, "start_ts": int(now)}

    def think(self, app_id: str, agent_id: str, body: Any) -> dict[str, Any]:
        """POST /think: the text becomes a user entry of the history."""
        now = self._now()
        agent = self._live_agent(app_id, agent_id, now)
        body = v.as_object(body)
        text = v.required_str(body, "text")
        for field in ("on_listening_action", "on_thinking_action", "on_speaking_action"):
            v.one_of(body, field, THINK_ACTIONS)
        v.optional(body, "interruptable", bool)
        v.string_map(body, "metadata")
        agent.remember("user", text)
        return {"agent_id": agent.agent_id, "channel": agent.channel, "start_ts": int(now)}

    # ------------------------------------------------------------------ telephony

    def start_call(self, app_id: str, body: Any) -> dict[str, Any]:
        """POST /call: an outbound call plus the agent that waits for the callee; the call
        rings, then is answered, or fails when the callee is busy or does not answer."""
        now = self._now()
        body = v.as_object(body)
        name = v.required_str(body, "name")
        sip = v.required_object(body, "sip")
        to_number, from_number = (
            v.phone_number(v.required_str(sip, field, "sip."))
            for field in ("to_number", "from_number")
        )
        for field in ("rtc_uid", "rtc_token"):  # older docs: sip_rtc_uid / sip_rtc_token
            if field not in sip and f"sip_{field}" not in sip:
                raise InvalidBodyError("MissingRequiredField", f"sip.{field} is required")
        properties = v.required_object(body, "properties")
        self._check_session(properties)
        v.optional(properties, "remote_rtc_uids", list, "properties.")
        pipeline_id = v.optional(body, "pipeline_id", str)
        if self.rules.validate_join:
            check_join(body, properties)
        agent = self._create_agent(app_id, name, properties, "telephony", now)
        rules = self.rules
        rings_until = now + rules.ring_seconds
        if to_number in rules.busy_numbers:
            self._schedule(rings_until, "busy", agent)
        elif to_number in rules.unanswered_numbers:
            rings_until = now + rules.no_answer_seconds
            self._schedule(rings_until, "no_answer", agent)
        agent.call = Call(agent, to_number, from_number, pipeline_id, rings_until=rings_until)
        return {"agent_id": agent.agent_id}

    def list_calls(self, app_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        """GET /call: filter by number, time window and type; cursor paging."""
        now = self._now()
        from_time = v.query_float(query, "from_time", now - CALL_LIST_WINDOW)
        to_time = v.query_float(query, "to_time", now)
        limit = v.query_int(query, "limit", 20, 1)
        number = query.get("number")
        kind = query.get("type")
        agents = self._after_cursor(self._agents.get(app_id, {}), query.get("cursor"))
        calls = [
            agent.call
            for agent in agents
            if agent.call is not None
            and from_time <= agent.created <= to_time
            and number in (None, agent.call.to_number, agent.call.from_number)
            and kind in (None, agent.call.kind)
        ]
        page = calls[:limit]
        rest = calls[limit : limit + 1]
        return {
            "data": {"count": len(page), "list": [c.item(now) for c in page]},
            "meta": {"cursor": rest[0].agent.agent_id if rest else "", "total": len(calls)},
            "status": "ok",
        }

    def get_call(self, app_id: str, agent_id: str) -> dict[str, Any]:
        """GET /calls/{id}: the call record with its end reason."""
        now = self._now()
        call = self._call(app_id, agent_id, now)
        return {**call.item(now), "reason": call.reason}

    def hangup(self, app_id: str, agent_id: str) -> dict[str, Any]:
        """POST /calls/{id}/hangup: 404 `not_found` when the call has already ended."""
        now = self._now()
        call = self._call(app_id, agent_id, now)
        if call.ended:
            raise not_found("telephony", f"call {agent_id} has already ended")
        call.end("request", now)
        self._stop(call.agent, now, "STOPPED", "OK")
        return {}

    # ------------------------------------------------------------------ test controls

    def end_agent(self, app_id: str, agent_id: str, status: str, message: str) -> None:
        """Make a live agent leave on its own (idle timeout, RTC failure, ...)."""
        now = self._now()
        agent = self._live_agent(app_id, agent_id, now)
        if status not in FINAL_STATUSES:
            raise InvalidBodyError("InvalidFieldValue", "status must be STOPPED or FAILED")
        self._end(agent, now, status, message)

    def report_error(self, app_id: str, agent_id: str, errors: list[dict[str, Any]]) -> None:
        """A module error during the session (webhook 110); the agent keeps running."""
        self.notifier.failed(self._live_agent(app_id, agent_id, self._now()), errors)

    def inbound_call(self, app_id: str, body: Any) -> dict[str, Any]:
        """A caller dials an imported number: its agent answers at once (`type` inbound).

        `to_number` must be imported and take inbound calls; `name` defaults to one made of
        the caller and the time.
        """
        now = self._now()
        body = v.as_object(body)
        to_number = v.phone_number(v.required_str(body, "to_number"))
        from_number = v.phone_number(v.required_str(body, "from_number"))
        if not self.numbers.get(to_number)["inbound"]:
            raise InvalidBodyError("InvalidFieldValue", f"{to_number} takes no inbound calls")
        name = v.optional(body, "name", str) or f"inbound-{from_number}-{int(now * 1000)}"
        agent = self._create_agent(app_id, name, {"channel": name}, "telephony", now)
        agent.call = Call(agent, to_number, from_number, None, kind="inbound")
        return {"agent_id": agent.agent_id}

    def agent_count(self) -> int:
        """Agents currently remembered (live and recently stopped)."""
        return sum(len(agents) for agents in self._agents.values())

    # ------------------------------------------------------------------ internals

    def _now(self) -> float:
        """The time of the request being served, once what happened by itself until then
        has been applied."""
        now = self._clock()
        self._settle(now)
        return now

    def _settle(self, now: float) -> None:
        """End the agents due to end by themselves by `now`, at the moment each was due."""
        due = self._due
        while due and due[0][0] <= now:
            at, _, happening, agent = heapq.heappop(due)
            if not agent.live:
                continue
            if happening == "idle" and agent.last_active + agent.idle_timeout > at:
                self._schedule(agent.last_active + agent.idle_timeout, "idle", agent)
                continue
            status, message = ENDINGS[happening]
            self._end(agent, at, status, message)

    def _schedule(self, at: float, happening: Happening, agent: Agent) -> None:
        heapq.heappush(self._due, (at, next(self._sequence), happening, agent))

    def _end(self, agent: Agent, at: float, status: str, message: str) -> None:
        """The agent leaves by itself at `at`, with its call when it has one."""
        self._stop(agent, at, status, message, delay=0.0)
        call = agent.call
        if call is not None and not call.ended:
            call.end("hangup" if status == "STOPPED" and at >= call.rings_until else "failed", at)

    def _create_agent(
        self, app_id: str, name: str, properties: dict[str, Any], family: str, now: float
    ) -> Agent:
        holder = self._names.get((app_id, name))
        if holder is not None and (
            self.rules.name_reuse == "never" or holder.status(now) not in FINAL_STATUSES
        ):
            if family == "agent":
                raise EmulatedError(409, "TaskConflict", f"agent {name} already exists")
            raise EmulatedError(409, "conflict", f"call session {name} already exists")
        if self._live.get(app_id, 0) >= self.max_agents_per_app:
            raise EmulatedError(
                422, QUOTA_REASON, f"more than {self.max_agents_per_app} concurrent agents"
            )
        agent = Agent(app_id, name, properties, now, self.start_delay, agent_id=self._new_id())
        self._agents.setdefault(app_id, {})[agent.agent_id] = agent
        self._names[(app_id, name)] = agent
        self._live[app_id] = self._live.get(app_id, 0) + 1
        self.notifier.joined(agent, agent.running_at)
        rules = self.rules
        if rules.agent_failure_rate and self._draw() < rules.agent_failure_rate:
            self._schedule(agent.running_at, "failure", agent)
        if rules.idle_exit and agent.idle_timeout > 0:
            self._schedule(now + agent.idle_timeout, "idle", agent)
        return agent

    def _stop(
        self, agent: Agent, now: float, status: str, message: str, delay: float | None = None
    ) -> None:
        agent.stop_at = now + (self.stop_delay if delay is None else delay)
        agent.final_status = status
        agent.message = message
        self._live[agent.app_id] -= 1
        self.notifier.left(agent, agent.stop_at)
        self._stopped.append(agent)
        while len(self._stopped) > self._retain_stopped:
            self._forget(self._stopped.popleft())

    def _forget(self, agent: Agent) -> None:
        self._agents[agent.app_id].pop(agent.agent_id, None)
        key = (agent.app_id, agent.name)
        if self._names.get(key) is agent and self.rules.name_reuse == "after_stop":
            del self._names[key]  # under `never` the name stays taken

    def _agent(self, app_id: str, agent_id: str, now: float) -> Agent:
        """The agent a request addresses."""
        agent = self._agents.get(app_id, {}).get(agent_id)
        if agent is None:
            raise not_found("agent", f"agent {agent_id} not found")
        return _addressed(agent, now)

    def _live_agent(self, app_id: str, agent_id: str, now: float) -> Agent:
        agent = self._agent(app_id, agent_id, now)
        if not agent.live:
            raise not_found("agent", f"agent {agent_id} has exited")
        return agent

    def _call(self, app_id: str, agent_id: str, now: float) -> Call:
        agent = self._agents.get(app_id, {}).get(agent_id)
        if agent is None or agent.call is None:
            raise not_found("telephony", f"call {agent_id} not found")
        _addressed(agent, now)
        return agent.call

    @staticmethod
    def _after_cursor(agents: dict[str, Agent], cursor: str | None) -> Iterable[Agent]:
        """The app's agents in start order, from the one `cursor` names (all without one).

        A cursor is a position among all of the app's agents, so it stays valid when its agent
        changes state; one that names no agent (made up, or forgotten since) is refused.
        """
        if not cursor:
            return agents.values()
        if cursor not in agents:
            raise InvalidBodyError("InvalidFieldValue", f"cursor {cursor!r} is not a position")
        return itertools.dropwhile(lambda agent: agent.agent_id != cursor, agents.values())

    @classmethod
    def _check_properties(cls, properties: dict[str, Any]) -> None:
        cls._check_session(properties)
        v.required_list(properties, "remote_rtc_uids", "properties.")

    @staticmethod
    def _check_session(properties: dict[str, Any]) -> None:
        """The RTC fields every start and call needs."""
        v.required_str(properties, "channel", "properties.")
        v.required_str(properties, "agent_rtc_uid", "properties.")
        if not isinstance(properties.get("token"), str):  # "" is valid for apps without certificate
            raise InvalidBodyError("MissingRequiredField", "properties.token is required")

    @staticmethod
    def _state_codes(raw: str) -> frozenset[int]:
        try:
            return frozenset(int(code) for code in raw.split(","))
        except ValueError:
            raise InvalidBodyError(
                "InvalidFieldValue", "state must be comma-separated status codes"
            ) from None


def _addressed(agent: Agent, now: float) -> Agent:
    """`agent`, which a request addressed at `now`: a live one is kept from idling."""
    if agent.live:
        agent.last_active = now
    return agent
