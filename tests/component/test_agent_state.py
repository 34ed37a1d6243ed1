"""The agent-state topic among members: newest observation last, tombstones, replay = live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from contracts import AgentStateEvent, decode_agent_state, encode_event
from tests.component.harness import ScriptedApi, running, settings, until
from tests.states import state_event
from worker.agents import housekeeping
from worker.agents.directory import AgentDirectory
from worker.agents.state_sink import DirectoryStateSink
from worker.app import StateOutput
from worker.errors import OutputRejectedError
from worker.kafka.memory import InMemoryBroker
from worker.kafka.ports import RecordRejectedError
from worker.metrics import Metrics
from worker.observability.health import Health
from worker.pipeline.outputs import Outputs
from worker.pipeline.publisher import Publisher

STATE = "convoai.agent-state"
APP = "component-app"


@pytest.fixture(autouse=True)
def prompt_repairs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Repairs are due 50 ms after a stale record landed, instead of seconds."""
    monkeypatch.setattr(housekeeping, "REPAIR_AFTER_SECONDS", 0.05)


def observed(agent_id: str, status: str, ago: float = 0.0, **fields: Any) -> AgentStateEvent:
    """An observation made `ago` seconds ago."""
    at = datetime.now(UTC) - timedelta(seconds=ago)
    return state_event(agent_id, status, at, **{"app_id": APP, **fields})


def publish(broker: InMemoryBroker, *events: AgentStateEvent) -> None:
    """Write events to the state topic as another member would."""
    for event in events:
        broker.produce(STATE, encode_event(event), key=event.agent_id.encode())


def tombstone(broker: InMemoryBroker, agent_id: str) -> None:
    broker.produce(STATE, None, key=agent_id.encode())


def last_records(broker: InMemoryBroker) -> dict[str, str | None]:
    """What compaction would keep: agent id → last status (None for a tombstone)."""
    kept: dict[str, str | None] = {}
    for record in broker.records(STATE):
        assert record.key is not None
        value = record.value
        kept[record.key.decode()] = decode_agent_state(value).status if value else None
    return kept


def records_of(broker: InMemoryBroker, agent_id: str) -> list[str | None]:
    """Every record of one agent, in order: its status, or None for a tombstone."""
    return [
        decode_agent_state(record.value).status if record.value else None
        for record in broker.records(STATE)
        if record.key == agent_id.encode()
    ]


async def test_an_older_observation_landing_last_is_published_again(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """Two members published at the same moment and the older event landed last: the newer
    state is written again, so compaction keeps STOPPED, not the stale RUNNING."""
    async with running(broker, api) as member:
        publish(broker, observed("A", "STOPPED", ago=1), observed("A", "RUNNING", ago=5))
        await until(lambda: records_of(broker, "A") == ["STOPPED", "RUNNING", "STOPPED"], "repair")
        state = member.worker.directory.state(APP, "A")
        assert state is not None
        assert state.status == "STOPPED"


async def test_a_late_join_after_the_stop_never_revives_the_agent(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """A "joined" event observed after the stop (NCS refreshes notifyMs on redelivery)."""
    async with running(broker, api) as member:
        publish(
            broker,
            observed("A", "RUNNING", ago=3),
            observed("A", "STOPPED", ago=2),
            observed("A", "RUNNING", ago=0, source="webhook"),
        )
        await until(lambda: last_records(broker) == {"A": "STOPPED"}, "the topic ends STOPPED")
        assert member.worker.directory.resolve(APP, "bot") is None


async def test_stopped_agents_are_tombstoned_after_the_retention(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """Memory and the compacted topic shrink back to the live agents."""
    async with running(broker, api, state_retention_seconds=0.3) as member:
        directory = member.worker.directory
        publish(broker, observed("LIVE", "RUNNING"), observed("GONE", "STOPPED"))
        await until(lambda: len(directory) == 2, "both agents followed")
        await until(lambda: records_of(broker, "GONE")[-1:] == [None], "GONE tombstoned")
        assert sorted(directory.snapshot()) == [(APP, "LIVE")]
        assert last_records(broker) == {"LIVE": "RUNNING", "GONE": None}
        metrics = member.worker.metrics.registry
        assert metrics.get_sample_value("convoai_agents_tracked") == 1
        upkeep = {"kind": "tombstone"}
        assert metrics.get_sample_value("convoai_agent_state_upkeep_total", upkeep) == 1


async def test_a_tombstone_never_deletes_a_live_agent(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """A tombstone for an agent the member holds as live and recent leaves it in place."""
    async with running(broker, api) as member:
        directory = member.worker.directory
        publish(broker, observed("LIVE", "RUNNING"), observed("GONE", "STOPPED"))
        tombstone(broker, "LIVE")
        tombstone(broker, "GONE")
        publish(broker, observed("MARK", "RUNNING", name="mark"))
        await until(lambda: directory.state(APP, "MARK") is not None, "records followed")
        assert sorted(directory.snapshot()) == [(APP, "LIVE"), (APP, "MARK")]


async def test_members_tombstoning_the_same_agents_do_no_harm(broker: InMemoryBroker) -> None:
    """Both members sweep; duplicate tombstones delete nothing more and revive nothing."""
    gone = [f"GONE-{n}" for n in range(20)]
    async with (
        running(broker, ScriptedApi(), state_retention_seconds=0.3) as one,
        running(broker, ScriptedApi(), state_retention_seconds=0.3) as other,
    ):
        publish(broker, observed("LIVE", "RUNNING"), *(observed(a, "STOPPED") for a in gone))
        directories = [one.worker.directory, other.worker.directory]
        await until(
            lambda: all(sorted(d.snapshot()) == [(APP, "LIVE")] for d in directories),
            "agents forgotten",
        )
        await until(lambda: all(records_of(broker, a)[-1:] == [None] for a in gone), "tombstones")
        for agent_id in gone:
            assert records_of(broker, agent_id)[0] == "STOPPED"
            assert set(records_of(broker, agent_id)[1:]) == {None}
            assert len(records_of(broker, agent_id)) <= 3
        assert one.worker.directory.snapshot() == other.worker.directory.snapshot()


async def test_replaying_the_topic_gives_the_directory_live_following_built(
    broker: InMemoryBroker,
) -> None:
    """A member that starts later replays the same records, interleaved across partitions
    differently, and ends with the same states and names as one that followed them live."""
    events = [
        observed("OLD", "RUNNING", ago=9),
        observed("NEW", "STARTING", ago=4),
        observed("OLD", "STOPPED", ago=5, source="webhook"),
        observed("NEW", "RUNNING", ago=3, source="webhook"),
        observed("OLD", "RUNNING", ago=1, source="webhook"),  # late "joined"
        observed("X", "FAILED", ago=2, name="x"),
        observed("NEW", "STARTING", ago=4),  # a duplicate from another member
    ]
    expected = {
        (APP, "OLD"): ("bot", "STOPPED"),
        (APP, "NEW"): ("bot", "RUNNING"),
        (APP, "X"): ("x", "FAILED"),
    }
    async with running(broker, ScriptedApi()) as live:
        publish(broker, *events)
        await until(lambda: live.worker.directory.snapshot() == expected, "live directory")
        async with running(broker, ScriptedApi()) as late:
            assert late.worker.directory.snapshot() == expected
            for member in (live, late):
                assert member.worker.directory.resolve(APP, "bot") == "NEW"


async def test_webhook_and_reconcile_observations_are_published_only_when_news(
    broker: InMemoryBroker,
) -> None:
    """The state sink publishes a change, completed with the agent's name; an older or an
    already known observation is not published, and the directory learns only after Kafka."""
    config = settings()
    sink = broker.backend(config).output_sink()
    await sink.start()
    metrics = Metrics(CollectorRegistry())
    publisher = Publisher(sink, metrics, Health(config))
    directory = AgentDirectory()
    directory.observe(observed("A", "RUNNING", ago=5))
    states = DirectoryStateSink(StateOutput(Outputs(config), publisher), directory)

    def refuse(*_: object) -> BaseException:
        return RecordRejectedError("too large")

    broker.send_fault = refuse
    with pytest.raises(OutputRejectedError):
        await states.publish_state(observed("A", "STOPPED", ago=2, source="webhook"))
    assert directory.resolve(APP, "bot") == "A"  # not learnt: the redelivery must publish it
    broker.send_fault = None

    assert await states.publish_state(observed("A", "STOPPED", ago=1, name=None, source="webhook"))
    assert [decode_agent_state(r.value).name for r in broker.records(STATE) if r.value] == ["bot"]
    assert not await states.publish_state(observed("A", "RUNNING", source="webhook"))
    assert not await states.publish_state(observed("A", "STOPPED", source="reconcile"))
    assert records_of(broker, "A") == ["STOPPED"]
    state = directory.state(APP, "A")
    assert state is not None
    assert (state.status, state.source) == ("STOPPED", "webhook")
    assert msgspec.structs.asdict(state)["name"] == "bot"
