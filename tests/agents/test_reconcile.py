"""Reconciliation publishes what the API says when it disagrees, and survives failures."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from contracts import AgentStateEvent
from tests.observability.fakes import RecordingSink
from tests.states import state_event
from worker.agents.directory import AgentDirectory
from worker.agents.reconcile import Reconciler


class FakeApi:
    """Answers status checks from a table; an exception in the table is raised."""

    def __init__(self, answers: dict[str, str | Exception | None]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, str]] = []
        self.running = 0
        self.most_at_once = 0

    async def check(self, app_id: str, agent_id: str) -> str | None:
        self.asked.append((app_id, agent_id))
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(0.001)
            answer = self.answers[agent_id]
        finally:
            self.running -= 1
        if isinstance(answer, Exception):
            raise answer
        return answer


def started(
    directory: AgentDirectory, agent_id: str, status: str, name: str | None = None, ago: float = 0
) -> None:
    """Record an agent this worker started, observed `ago` seconds ago."""
    at = datetime.now(UTC) - timedelta(seconds=ago)
    directory.observe(state_event(agent_id, status, at, name=name), ours=True)


class DirectorySink(RecordingSink):
    """A sink that, like the worker's, publishes only what is news to the directory."""

    def __init__(self, directory: AgentDirectory) -> None:
        super().__init__()
        self.directory = directory

    async def publish_state(self, event: AgentStateEvent) -> bool:
        observed = self.directory.preview(event)
        if not observed.changed:
            return False
        await super().publish_state(observed.state)
        self.directory.observe(observed.state)
        return True


@pytest.fixture
def directory() -> AgentDirectory:
    """The pipeline's own directory: A, B, C started here and alive, D stopped."""
    directory = AgentDirectory()
    started(directory, "A", "RUNNING", "a", ago=1)
    started(directory, "B", "RUNNING", "b", ago=1)
    started(directory, "C", "STARTING", ago=1)
    started(directory, "D", "STOPPED", "d", ago=1)
    return directory


async def test_only_disagreements_are_published(directory: AgentDirectory):
    """An agent gone on idle timeout is reported; agreeing and unknown answers are not."""
    api = FakeApi({"A": "STOPPED", "B": "RUNNING", "C": None})
    sink = RecordingSink()
    assert await Reconciler(60, directory, api.check, sink).reconcile_once() == 1
    assert sorted(api.asked) == [("app", "A"), ("app", "B"), ("app", "C")]
    (event,) = sink.events
    assert (event.app_id, event.agent_id, event.name, event.status, event.source) == (
        "app",
        "A",
        "a",
        "STOPPED",
        "reconcile",
    )
    assert event.message == "API reports STOPPED; last known status was RUNNING"


async def test_each_agent_is_read_under_its_own_app_id():
    """Two tenants' agents are each read with their App ID; one known without an App ID is
    not read under any (the default App ID may be another tenant's)."""
    directory = AgentDirectory()
    at = datetime.now(UTC)
    for app_id, agent_id in (("app-a", "A"), ("app-b", "B"), (None, "C")):
        directory.observe(state_event(agent_id, "RUNNING", at, app_id=app_id), ours=True)
    api = FakeApi({"A": "RUNNING", "B": "STOPPED", "C": "STOPPED"})
    sink = RecordingSink()
    assert await Reconciler(60, directory, api.check, sink).reconcile_once() == 1
    assert sorted(api.asked) == [("app-a", "A"), ("app-b", "B")]
    assert [(event.app_id, event.agent_id) for event in sink.events] == [("app-b", "B")]


async def test_api_and_publish_errors_skip_only_that_agent(directory: AgentDirectory):
    """A failed check or publish is logged and skipped; the next pass publishes what failed."""
    api = FakeApi({"A": TimeoutError("API timed out"), "B": "FAILED", "C": "STARTING"})
    sink = RecordingSink()
    sink.failures = 1  # Kafka refuses B's first publish
    reconciler = Reconciler(60, directory, api.check, sink)
    assert await reconciler.reconcile_once() == 0
    assert await reconciler.reconcile_once() == 1
    assert [(event.agent_id, event.status) for event in sink.events] == [("B", "FAILED")]
    assert sink.attempts == 2
    assert [agent_id for _, agent_id in api.asked].count("A") == 2


async def test_a_status_changed_during_the_check_is_left_alone():
    """A command that stopped the agent meanwhile wins over the API's older answer."""
    directory = AgentDirectory()
    started(directory, "A", "STARTING", "a", ago=1)

    async def check(app_id: str, agent_id: str) -> str | None:
        started(directory, agent_id, "STOPPING", "a")  # agent.stop completed meanwhile
        return "RUNNING"  # read before the stop

    sink = DirectorySink(directory)
    assert await Reconciler(60, directory, check, sink).reconcile_once() == 0
    assert sink.events == []
    assert directory.resolve("app", "a") is None


async def test_a_stop_is_confirmed_by_the_api(directory: AgentDirectory):
    """A STOPPING agent is checked too; STOPPED from the API ends it in the directory."""
    started(directory, "A", "STOPPING", "a")
    api = FakeApi({"A": "STOPPED", "B": "RUNNING", "C": "STARTING"})
    sink = DirectorySink(directory)
    assert await Reconciler(60, directory, api.check, sink).reconcile_once() == 1
    [event] = sink.events
    assert (event.agent_id, event.status, event.name, event.source) == (
        "A",
        "STOPPED",
        "a",
        "reconcile",
    )
    assert sorted(state.agent_id for state in directory.alive()) == ["B", "C"]


async def test_checks_run_with_bounded_concurrency():
    """Many agents are checked a few at a time, not all at once."""
    directory = AgentDirectory()
    for n in range(20):
        started(directory, f"A{n}", "RUNNING")
    api = FakeApi({f"A{n}": "RUNNING" for n in range(20)})
    await Reconciler(60, directory, api.check, RecordingSink(), concurrency=3).reconcile_once()
    assert len(api.asked) == 20
    assert api.most_at_once == 3


async def test_disabled_reconciler_returns_at_once(directory: AgentDirectory):
    """Interval 0 means off: run() ends without asking the API anything."""
    api = FakeApi({})
    await asyncio.wait_for(Reconciler(0, directory, api.check, RecordingSink()).run(), 1)
    assert api.asked == []


async def test_run_repeats_passes_and_survives_a_broken_pass(directory: AgentDirectory):
    """Every interval brings a pass; a pass that raises does not end reconciliation."""
    passes = 0
    third_pass = asyncio.Event()

    class FlakyDirectory:
        def alive(self):
            nonlocal passes
            passes += 1
            if passes == 1:
                raise RuntimeError("directory unavailable")
            if passes == 3:
                third_pass.set()
            return directory.alive()

    api = FakeApi({"A": "RUNNING", "B": "RUNNING", "C": "RUNNING"})
    sink = RecordingSink()
    task = asyncio.create_task(Reconciler(0.01, FlakyDirectory(), api.check, sink).run())
    try:
        await asyncio.wait_for(third_pass.wait(), 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert [agent_id for _, agent_id in api.asked].count("C") >= 1
    assert [event.agent_id for event in sink.events].count("C") >= 1  # C: STARTING → RUNNING
