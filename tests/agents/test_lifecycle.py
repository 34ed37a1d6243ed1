"""The agent lifecycle model and the directory on it: order-independent, name-safe, bounded."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import AgentStateEvent
from tests.states import state_event
from worker.agents.directory import MAX_SESSION_SECONDS, AgentDirectory
from worker.agents.lifecycle import merge, outranks

T0 = 1_800_000_000.0
STATUSES = ["IDLE", "STARTING", "RUNNING", "RECOVERING", "STOPPING", "STOPPED", "FAILED", "NEW"]


def seen(agent_id: str, status: str, at: float, **fields: Any) -> AgentStateEvent:
    """An observation `at` seconds after T0."""
    return state_event(agent_id, status, datetime.fromtimestamp(T0 + at, UTC), **fields)


def directory_of(*events: AgentStateEvent) -> AgentDirectory:
    directory = AgentDirectory()
    for event in events:
        directory.observe(event)
    return directory


class TestWhichObservationWins:
    def test_a_later_phase_wins_even_when_observed_earlier(self) -> None:
        """A "joined" webhook sent after the stop (NCS refreshes `notifyMs`) cannot revive it."""
        stopped = seen("A", "STOPPED", 10, source="webhook")
        late_join = seen("A", "RUNNING", 20, source="webhook")
        assert merge(stopped, late_join).status == "STOPPED"
        assert merge(late_join, stopped).status == "STOPPED"

    def test_within_a_phase_the_newer_observation_wins(self) -> None:
        """RUNNING ⇄ RECOVERING: `observed_at` decides, whichever arrives first."""
        recovering = seen("A", "RECOVERING", 10)
        running = seen("A", "RUNNING", 20)
        assert merge(recovering, running) == running
        assert merge(running, recovering) == running

    def test_an_older_get_loses_to_a_newer_webhook(self) -> None:
        """Observed_at is compared: an older observation never overwrites a newer one."""
        failed = seen("A", "FAILED", 20, source="webhook", message="RTC connection error")
        stopped = seen("A", "STOPPED", 10)
        assert merge(failed, stopped) == failed

    def test_ties_are_broken_the_same_way_in_either_order(self) -> None:
        """Two observations with the same rank: a fixed order, not the arrival order."""
        one = seen("A", "STOPPED", 10, message="OK")
        other = seen("A", "STOPPED", 10, message="Idle for too long")
        assert merge(one, other) == merge(other, one)
        assert outranks(one, other) != outranks(other, one)

    def test_instance_fields_survive_an_observation_that_lacks_them(self) -> None:
        """A reconcile or list observation without name or app keeps the agent's name."""
        named = seen("A", "RUNNING", 10, name="bot")
        anonymous = seen("A", "STOPPED", 20, name=None, app_id=None)
        state = merge(named, anonymous)
        assert (state.status, state.name, state.app_id) == ("STOPPED", "bot", "app")

    @settings(max_examples=200)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["A", "B", "C"]),
                st.sampled_from(STATUSES),
                st.integers(0, 5),
                st.sampled_from(["command", "webhook", "reconcile"]),
                st.sampled_from(["bot", None]),
            ),
            min_size=1,
            max_size=12,
        ),
        st.randoms(use_true_random=False),
    )
    def test_any_order_of_the_same_observations_gives_the_same_directory(
        self, observations: list[tuple[str, str, int, str, str | None]], rng: random.Random
    ) -> None:
        """Replaying the state topic, following it live or merging several members' events in
        any interleaving ends in the same states and the same name resolution."""
        events = [
            seen(agent, status, at, source=source, name=name)
            for agent, status, at, source, name in observations
        ]
        shuffled = list(events)
        rng.shuffle(shuffled)
        first, second = directory_of(*events), directory_of(*shuffled)
        assert first.snapshot() == second.snapshot()
        assert first.resolve("app", "bot") == second.resolve("app", "bot")
        for agent_id in {event.agent_id for event in events}:
            assert first.state("app", agent_id) == second.state("app", agent_id)


class TestNames:
    def test_a_name_points_at_the_newest_live_agent(self) -> None:
        """A restarted name maps to the new agent; apps are separate namespaces."""
        directory = directory_of(
            seen("A1", "RUNNING", 1, name="alice"),
            seen("A2", "STARTING", 5, name="alice"),
            seen("B1", "RUNNING", 1, name="alice", app_id="other"),
        )
        assert directory.resolve("app", "alice") == "A2"
        assert directory.resolve("other", "alice") == "B1"
        assert directory.resolve("app", "bob") is None

    def test_a_name_never_points_at_a_stopping_or_ended_agent(self) -> None:
        """Once its agent is STOPPING the name resolves to nothing (or to a newer agent)."""
        directory = directory_of(seen("A1", "RUNNING", 1), seen("A1", "STOPPING", 2))
        assert directory.resolve("app", "bot") is None
        last = directory.last_of("app", "bot")
        assert last is not None
        assert (last.agent_id, last.status) == ("A1", "STOPPING")
        directory.observe(seen("A2", "STARTING", 3))
        assert directory.resolve("app", "bot") == "A2"
        for status in ("STOPPED", "FAILED"):
            directory.observe(seen("A2", status, 4))
            assert directory.resolve("app", "bot") is None

    def test_no_late_observation_repoints_a_name_at_a_dead_agent(self) -> None:
        """agent.get of an old id, a late "left" webhook or a reconcile pass: name unchanged."""
        directory = directory_of(
            seen("OLD", "RUNNING", 1),
            seen("OLD", "STOPPING", 2),
            seen("NEW", "RUNNING", 3),
        )
        directory.observe(seen("OLD", "RUNNING", 9, source="webhook"))  # late "joined"
        directory.observe(seen("OLD", "STOPPED", 8, source="webhook"))  # late "left"
        directory.observe(seen("OLD", "STOPPED", 10, source="reconcile", name=None))
        assert directory.resolve("app", "bot") == "NEW"

    def test_an_agents_app_id_is_part_of_its_identity(self) -> None:
        """Observations of the same id under another App ID are another tenant's business:
        they neither move, rename nor stop the agent, and each name stays in its own App ID."""
        directory = directory_of(seen("A", "RUNNING", 1, app_id="app-b", name="bob"))
        directory.observe(seen("A", "STOPPED", 2, app_id="app-a", name="eve"))
        state = directory.state("app-b", "A")
        assert state is not None
        assert (state.app_id, state.name, state.status) == ("app-b", "bob", "RUNNING")
        assert directory.resolve("app-b", "bob") == "A"
        assert directory.resolve("app-a", "bob") is directory.resolve("app-b", "eve") is None
        assert directory.apps_of("A") == {"app-a", "app-b"}
        directory.forget("app-a", "A")
        assert directory.resolve("app-b", "bob") == "A"
        assert directory.apps_of("A") == {"app-a", "app-b"}  # retired, for one more retention
        directory.due(T0 + 2 + 2 * 100 + 1, retention=100)
        assert directory.apps_of("A") == {"app-b"}

    def test_a_tombstone_applies_to_the_agent_id_under_every_app_id(self) -> None:
        """The state topic is keyed by agent id: its tombstone forgets each ended entry."""
        directory = directory_of(
            seen("A", "STOPPED", 1, app_id="app-a"), seen("A", "RUNNING", 1, app_id="app-b")
        )
        assert not directory.forget_ended("A", T0 + 2)  # app-b's is live and recent
        assert sorted(directory.snapshot()) == [("app-b", "A")]

    def test_ours_marks_the_agents_the_reconciler_watches(self) -> None:
        """Agents this worker started and that have not ended."""
        directory = AgentDirectory()
        directory.observe(seen("A", "RUNNING", 1), ours=True)
        directory.observe(seen("B", "STOPPING", 1), ours=True)
        directory.observe(seen("C", "STOPPED", 1), ours=True)
        directory.observe(seen("D", "RUNNING", 1))
        assert sorted(state.agent_id for state in directory.alive()) == ["A", "B"]


class TestObserved:
    def test_only_a_status_change_is_news(self) -> None:
        """Same status observed again is no news; an older one loses."""
        directory = AgentDirectory()
        assert directory.observe(seen("A", "RUNNING", 1)).changed
        again = directory.observe(seen("A", "RUNNING", 2))
        assert (again.won, again.changed) == (True, False)
        older = directory.observe(seen("A", "STARTING", 3))
        assert (older.won, older.changed, older.state.status) == (False, False, "RUNNING")

    def test_preview_changes_nothing(self) -> None:
        """Webhooks ask first, publish, and only then apply."""
        directory = directory_of(seen("A", "RUNNING", 1))
        preview = directory.preview(seen("A", "STOPPED", 2))
        assert (preview.changed, preview.state.status) == (True, "STOPPED")
        assert directory.resolve("app", "bot") == "A"


class TestForgetting:
    def test_stopped_agents_are_due_once_the_retention_has_passed(self) -> None:
        """STOPPING and later phases are forgotten `retention` after their last observation."""
        directory = directory_of(
            seen("LIVE", "RUNNING", 0),
            seen("GONE", "STOPPED", 0),
            seen("ENDING", "STOPPING", 0),
            seen("RECENT", "FAILED", 50),
        )
        assert directory.due(T0 + 99, retention=100) == []
        due = directory.due(T0 + 100, retention=100)
        assert sorted(state.agent_id for state in due) == ["ENDING", "GONE"]
        for state in due:
            directory.forget(state.app_id or "", state.agent_id)
        assert sorted(directory.snapshot()) == [("app", "LIVE"), ("app", "RECENT")]
        assert [state.agent_id for state in directory.due(T0 + 150, retention=100)] == ["RECENT"]

    def test_an_observation_after_the_stop_postpones_forgetting(self) -> None:
        """The retention counts from the last observation of the agent."""
        directory = directory_of(seen("A", "STOPPING", 0))
        directory.observe(seen("A", "STOPPED", 60))
        assert directory.due(T0 + 100, retention=100) == []
        assert [state.status for state in directory.due(T0 + 160, retention=100)] == ["STOPPED"]

    def test_an_agent_never_seen_ending_is_due_after_the_maximum_session(self) -> None:
        """Without any stop observed, an agent older than 72 h plus the retention is gone."""
        directory = directory_of(seen("A", "RUNNING", 0))
        assert directory.due(T0 + MAX_SESSION_SECONDS + 99, retention=100) == []
        assert len(directory.due(T0 + MAX_SESSION_SECONDS + 100, retention=100)) == 1

    def test_a_tombstone_never_deletes_a_live_agent(self) -> None:
        """Tombstones from the topic drop ended agents; a recent live state stays."""
        directory = directory_of(seen("LIVE", "RUNNING", 0), seen("GONE", "STOPPED", 0))
        assert directory.forget_ended("GONE", T0 + 1)
        assert not directory.forget_ended("LIVE", T0 + 1)
        assert directory.forget_ended("UNKNOWN", T0 + 1)
        assert sorted(directory.snapshot()) == [("app", "LIVE")]
        assert directory.forget_ended("LIVE", T0 + MAX_SESSION_SECONDS)

    def test_late_news_does_not_bring_a_forgotten_agent_back(self) -> None:
        """The directory learns before the topic comes round, and webhooks arrive late: for
        another retention, what does not outrank a forgotten agent's last state is ignored."""
        directory = directory_of(seen("A", "RUNNING", 0), seen("A", "STOPPING", 5))
        directory.forget("app", "A")
        for late in (seen("A", "RUNNING", 0), seen("A", "RUNNING", 50, source="webhook")):
            assert not directory.observe(late).changed
        assert directory.forget_ended("A", T0 + 60)  # its tombstone came round
        assert not directory.observe(seen("A", "RUNNING", 70, source="webhook")).changed
        assert ("app", "A") not in directory.snapshot()
        confirmed = directory.observe(seen("A", "STOPPED", 80, source="reconcile", name=None))
        assert confirmed.changed  # a later phase is news: forgotten again after the retention
        assert confirmed.state.name == "bot"
        directory.forget("app", "A")
        directory.due(T0 + 80 + 2 * 100 + 1, retention=100)  # the last state is dropped too
        assert directory.observe(seen("A", "RUNNING", 90)).changed

    def test_forgetting_frees_the_name(self) -> None:
        """Memory holds live and recent agents only: names of forgotten agents are gone too."""
        directory = directory_of(seen("A", "STOPPED", 0))
        directory.forget("app", "A")
        assert directory.last_of("app", "bot") is None
        assert len(directory) == 0
