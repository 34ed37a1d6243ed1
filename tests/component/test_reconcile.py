"""Reconciliation in a running worker: the API over HTTP (the emulator), the state topic on the
in-memory broker."""

from __future__ import annotations

from contracts import decode_agent_state
from devtools.workload import agent_properties
from tests.component.harness import APP_ID, produce, results, running, until
from tests.emulator.harness import running_emulator
from worker.api.client import ConvoAIClient
from worker.kafka.memory import InMemoryBroker

STATE = "convoai.agent-state"
RUNNING = ("RUNNING", "reconcile")


def states_of(broker: InMemoryBroker, agent_id: str) -> list[tuple[str, str]]:
    """(status, source) of every state record of the agent."""
    found: list[tuple[str, str]] = []
    for record in broker.records(STATE):
        if record.key == agent_id.encode() and record.value:
            event = decode_agent_state(record.value)
            found.append((event.status, event.source))
    return found


async def test_an_agent_that_left_unnoticed_is_reported_stopped_by_the_reconciler(
    broker: InMemoryBroker,
) -> None:
    """Without a webhook, the periodic check asks the API for the agent this worker started and
    publishes the STOPPED it reports, as a `reconcile` observation."""
    async with running_emulator() as emulator:
        settings = emulator.settings(app_id=APP_ID)
        client = ConvoAIClient(settings)
        overrides = {
            "api_base_url": settings.api_base_url,
            "customer_id": settings.customer_id,
            "customer_secret": settings.customer_secret,
            "reconcile_interval_seconds": 0.05,
        }
        async with running(broker, client, **overrides):  # type: ignore[arg-type]
            start = {
                "command": "agent.start",
                "id": "start",
                "name": "bot",
                "properties": agent_properties("bot"),
            }
            produce(broker, "convoai.commands", [start])
            await until(lambda: bool(results(broker)), "the start's result")
            [result] = results(broker)
            agent_id = result.agent_id
            assert (result.outcome, agent_id is not None) == ("succeeded", True)
            assert agent_id is not None
            leave = f"{emulator.origin}/_emulator/apps/{APP_ID}/agents/{agent_id}/leave"
            async with emulator.session.post(leave, json={"status": "STOPPED"}) as answer:
                assert answer.status == 200
            await until(
                lambda: states_of(broker, agent_id)[-1:] == [("STOPPED", "reconcile")],
                "STOPPED from the reconciler",
            )
        states = states_of(broker, agent_id)
        assert states[0] == ("STARTING", "command")
        # a pass may have seen it running in between (the emulator's start takes a second)
        assert states[1:] in ([("STOPPED", "reconcile")], [RUNNING, ("STOPPED", "reconcile")])
