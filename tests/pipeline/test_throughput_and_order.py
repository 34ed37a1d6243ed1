"""2,000 mixed commands over 200 keys through the real broker and the emulator."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict

import pytest

from tests.emulator.harness import RunningEmulator
from tests.pipeline.harness import (
    committed_offsets,
    end_offsets,
    in_process_worker,
    make_settings,
    produce,
    wait_for_results,
)
from tests.pipeline.scenarios import SPEAKS_PER_AGENT, agent_lifecycle

pytestmark = pytest.mark.kafka

AGENTS = 200  # keys; 12 commands each → 2,400 commands


async def test_mixed_commands_exactly_one_result_in_key_order(
    kafka_bootstrap: str, topics: dict[str, str], emulator: RunningEmulator
) -> None:
    """One final result per command, per-key order at the API, offsets committed to the end."""
    commands = agent_lifecycle("mix", AGENTS)
    assert len(commands) >= 2000
    await produce(kafka_bootstrap, topics["commands"], commands)
    settings = make_settings(kafka_bootstrap, topics, emulator.api_url)

    async with in_process_worker(settings):
        results = await wait_for_results(
            kafka_bootstrap, topics["results"], {c["id"] for c in commands}
        )
        # the committer runs every 0.2 s; give it a moment to commit the tail
        for _ in range(50):
            if await committed_offsets(
                kafka_bootstrap, settings.group_id, topics["commands"]
            ) == await end_offsets(kafka_bootstrap, topics["commands"]):
                break
            await asyncio.sleep(0.1)

    per_id = Counter(r.command_id for r in results)
    assert len(per_id) == len(commands)
    assert set(per_id.values()) == {1}, "exactly one final result per command"
    outcomes = Counter(r.outcome for r in results)
    assert outcomes == {"succeeded": len(commands)}, outcomes

    # Per-key order at the API: each agent's speaks arrive numbered 0..n-1, after its start.
    spoken: dict[str, list[int]] = defaultdict(list)
    for request in emulator.requests("agent.speak"):
        name, _, number = request["body"]["text"].rpartition(" says ")
        spoken[name].append(int(number))
    assert len(spoken) == AGENTS
    assert all(seq == list(range(SPEAKS_PER_AGENT)) for seq in spoken.values())
    operations = [r["operation"] for r in emulator.requests()]
    assert operations.count("agent.start") == AGENTS
    assert operations.count("agent.stop") == AGENTS

    committed = await committed_offsets(kafka_bootstrap, settings.group_id, topics["commands"])
    assert committed == await end_offsets(kafka_bootstrap, topics["commands"])
