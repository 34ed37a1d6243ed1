"""Two App IDs on one worker, on the real broker: one tenant's commands cannot reach, mark or
resolve the other's agents."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts import decode_agent_state
from tests.emulator.harness import running_emulator
from tests.pipeline.harness import (
    in_process_worker,
    produce,
    read_topic,
    wait_for_results,
)
from tests.security.tenants import EMULATOR, A, B, start_agent, two_tenant_settings

pytestmark = pytest.mark.kafka


async def test_a_stop_of_another_tenants_agent_fails_and_changes_nothing_of_it(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    """app-a stops app-b's agent by id: the API says 404 for app-a, so the stop fails
    `not_found` (never `already_gone`), publishes no state, and app-b's agent keeps running
    and keeps its name; app-a cannot address it by app-b's name either."""
    async with running_emulator(EMULATOR) as emulator:
        settings = two_tenant_settings(kafka_bootstrap, topics, emulator.api_url, tmp_path)
        async with in_process_worker(settings) as worker:
            agent_id = await start_agent(kafka_bootstrap, topics, B.app_id, "bob")
            attacks = [
                {"command": "agent.stop", "id": "a-stop", "app_id": A.app_id, "agent_id": agent_id},
                {"command": "agent.get", "id": "a-get", "app_id": A.app_id, "name": "bob"},
                {"command": "agent.get", "id": "b-get", "app_id": B.app_id, "name": "bob"},
            ]
            await produce(kafka_bootstrap, topics["commands"], attacks)
            results = await wait_for_results(
                kafka_bootstrap, topics["results"], {"a-stop", "a-get", "b-get"}
            )
            held = worker.directory.state(B.app_id, agent_id)
        emulated = emulator.state.get_agent(B.app_id, agent_id)
    by_id = {r.command_id: r for r in results}
    stop = by_id["a-stop"]
    assert (stop.outcome, stop.already_gone) == ("failed", False)
    assert stop.error is not None
    assert (stop.error.code, stop.error.http_status) == ("not_found", 404)
    assert by_id["a-get"].outcome == "failed"
    assert by_id["a-get"].error is not None
    assert by_id["a-get"].error.code == "agent_not_found"
    assert (by_id["b-get"].outcome, by_id["b-get"].agent_id) == ("succeeded", agent_id)
    states = [
        decode_agent_state(r.value) for r in await read_topic(kafka_bootstrap, topics["state"])
    ]
    assert {(s.app_id, s.status) for s in states if s.agent_id == agent_id} <= {
        (B.app_id, "STARTING"),
        (B.app_id, "RUNNING"),
    }
    assert held is not None
    assert held.status in {"STARTING", "RUNNING"}
    assert emulated["status"] == "RUNNING"
