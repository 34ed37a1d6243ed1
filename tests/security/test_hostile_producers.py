"""Hostile producers on the commands topic, on the real broker: a record cannot claim another
tenant's command id, and a replay header the worker did not write is refused without being
copied or remembered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaProducer

from contracts import decode_result
from contracts.headers import REPLAY
from tests.emulator.harness import running_emulator
from tests.pipeline.harness import in_process_worker, produce, read_topic, wait_for_results
from tests.security.tenants import EMULATOR, A, B, start_agent, two_tenant_settings

pytestmark = pytest.mark.kafka


async def test_an_invalid_record_cannot_claim_another_tenants_command_id(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    """An invalid record under app-b carrying the id of app-a's coming speak gets its own
    `rejected` result under app-b; app-a's speak still reaches the API and gets its own
    `succeeded` result under app-a. So does an invalid record under app-a itself: a rejection
    never makes a valid command look done."""
    async with running_emulator(EMULATOR) as emulator:
        settings = two_tenant_settings(kafka_bootstrap, topics, emulator.api_url, tmp_path)
        async with in_process_worker(settings):
            agent_id = await start_agent(kafka_bootstrap, topics, A.app_id, "alice")
            speak: dict[str, Any] = {"command": "agent.speak", "agent_id": agent_id, "text": "hi"}
            invalid: dict[str, Any] = {"command": "agent.speak", "agent_id": agent_id, "text": 7}
            commands = [
                {**invalid, "id": "victim-1", "app_id": B.app_id},
                {**speak, "id": "victim-1", "app_id": A.app_id},
                {**invalid, "id": "victim-2", "app_id": A.app_id},
                {**speak, "id": "victim-2", "app_id": A.app_id},
            ]
            # one key, so the invalid records come first on the victims' partition
            records = [(agent_id.encode(), msgspec.json.encode(c)) for c in commands]
            await produce(kafka_bootstrap, topics["commands"], records)
            results = await wait_for_results(
                kafka_bootstrap, topics["results"], {"victim-1", "victim-2"}
            )
            await produce(kafka_bootstrap, topics["commands"], [{**speak, "id": "fence"}])
            results = await wait_for_results(
                kafka_bootstrap, topics["results"], {"victim-1", "victim-2", "fence"}
            )
        spoken = len(emulator.requests("agent.speak"))
    outcomes = sorted(
        (r.command_id, r.app_id, r.outcome) for r in results if "victim" in r.command_id
    )
    assert outcomes == [
        ("victim-1", A.app_id, "succeeded"),
        ("victim-1", B.app_id, "rejected"),
        ("victim-2", A.app_id, "rejected"),
        ("victim-2", A.app_id, "succeeded"),
    ]
    assert spoken == 3  # both victims and the fence reached the API


async def test_a_forged_replay_header_is_refused_and_not_copied(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    """A command with a 300 KB `convoai.replay` header, and one naming another topic: each is
    rejected, its dead letter does not carry the header, its result does not either; a command
    re-sent with a made-up marker does not run again."""
    async with running_emulator(EMULATOR) as emulator:
        settings = two_tenant_settings(kafka_bootstrap, topics, emulator.api_url, tmp_path)
        async with in_process_worker(settings):
            agent_id = await start_agent(kafka_bootstrap, topics, A.app_id, "carol")
            producer = AIOKafkaProducer(
                bootstrap_servers=kafka_bootstrap, max_request_size=1_048_576
            )
            await producer.start()
            try:
                for command_id, marker in (
                    ("huge", b"x" * 300_000),
                    ("elsewhere", b"some.other.topic:0:1"),
                ):
                    command = {
                        "command": "agent.speak",
                        "id": command_id,
                        "agent_id": agent_id,
                        "text": command_id,
                    }
                    await producer.send_and_wait(
                        topics["commands"],
                        msgspec.json.encode(command),
                        key=agent_id.encode(),
                        headers=[(REPLAY, marker)],
                    )
            finally:
                await producer.stop()
            await wait_for_results(kafka_bootstrap, topics["results"], {"huge", "elsewhere"})
        spoken = [r["body"]["text"] for r in emulator.requests("agent.speak")]
    results = {
        decode_result(r.value).command_id: r
        for r in await read_topic(kafka_bootstrap, topics["results"])
    }
    for command_id in ("huge", "elsewhere"):
        result = decode_result(results[command_id].value)
        assert result.outcome == "rejected"
        assert result.error is not None
        assert "convoai.replay" in result.error.message
        assert REPLAY not in dict(results[command_id].headers)
    letters = await read_topic(kafka_bootstrap, topics["dlq"])
    assert len(letters) == 2
    assert all(REPLAY not in dict(letter.headers) for letter in letters)
    assert spoken == []
