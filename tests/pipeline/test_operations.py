"""What the on-call engineer relies on, checked on the real broker: metrics, probes, log hygiene."""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from pathlib import Path

import aiohttp
import msgspec
import pytest
from aiokafka import AIOKafkaProducer

from devtools.workload import agent_properties
from tests.emulator.harness import RunningEmulator, running_emulator
from tests.pipeline.harness import (
    committed_offsets,
    end_offsets,
    in_process_worker,
    make_settings,
    produce,
    read_topic,
    scrape,
    spawn_worker,
    stop_process,
    total,
    wait_for_results,
    wait_ready,
)
from tests.pipeline.scenarios import agent_lifecycle
from worker.emulator.config import EmulatorConfig
from worker.emulator.faults import FaultSettings

pytestmark = pytest.mark.kafka


async def test_metrics_move_consistently_with_the_results(
    kafka_bootstrap: str, topics: dict[str, str], emulator: RunningEmulator
) -> None:
    """Counters scraped from /metrics match what landed on the results and DLQ topics."""
    commands = agent_lifecycle("obs", 20)
    failing = [
        {"command": "agent.stop", "id": f"gone-{i}", "agent_id": f"nope-{i}"} for i in range(5)
    ]
    missing = [
        {"command": "agent.get", "id": f"miss-{i}", "agent_id": f"nope-{i}"} for i in range(5)
    ]
    invalid = [
        msgspec.json.encode({"command": "agent.speak", "id": "inv", "agent_id": "A", "text": 1})
    ]
    await produce(kafka_bootstrap, topics["commands"], [*commands, *failing, *missing, *invalid])
    settings = make_settings(kafka_bootstrap, topics, emulator.api_url)
    ids = {c["id"] for c in [*commands, *failing, *missing]} | {"inv"}
    async with in_process_worker(settings):
        before = await scrape(settings.http_port)
        results = await wait_for_results(kafka_bootstrap, topics["results"], ids)
        # the committer and the lag gauges tick every 0.2 s: wait (bounded) for both to catch up
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            after = await scrape(settings.http_port)
            if total(after, "convoai_consumer_lag_records") == 0 and total(
                after, "convoai_commits_total", result="ok"
            ) > total(before, "convoai_commits_total", result="ok"):
                break
            assert asyncio.get_running_loop().time() < deadline, "no commit or lag left"
            await asyncio.sleep(0.05)
    dead = await read_topic(kafka_bootstrap, topics["dlq"])

    outcomes = Counter(r.outcome for r in results)
    assert outcomes == {
        "succeeded": len(commands),
        "failed": len(missing) + len(failing),  # stops of ids never seen: not_found
        "rejected": 1,
    }
    for outcome, count in outcomes.items():
        assert total(after, "convoai_commands_completed_total", outcome=outcome) == count
    assert total(after, "convoai_commands_received_total") == len(ids)
    assert total(after, "convoai_events_published_total", topic=topics["results"]) == len(results)
    assert total(after, "convoai_dlq_records_total") == len(dead) == 1
    assert total(after, "convoai_command_e2e_seconds_count") == len(results)
    api_calls = total(after, "convoai_api_request_seconds_count")
    assert api_calls >= len(commands) + len(failing) + len(missing)
    assert total(after, "convoai_api_request_seconds_count", status_class="4xx") >= len(
        missing + failing
    )
    assert total(after, "convoai_commits_total", result="ok") > total(
        before, "convoai_commits_total", result="ok"
    )
    assert total(after, "convoai_consumer_lag_records") == 0
    assert total(after, "convoai_commands_in_flight_limit") == settings.max_in_flight
    assert total(after, "convoai_rebalances_total", kind="assigned") >= 1


async def test_livez_fails_when_consumption_stalls(
    kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    """Commands stuck behind a hung API with lag and no progress turn /livez unhealthy."""
    hung = EmulatorConfig(faults=FaultSettings(latency_ms=60_000))
    async with running_emulator(hung) as emulator:
        settings = make_settings(
            kafka_bootstrap,
            topics,
            emulator.api_url,
            stall_timeout_seconds=1.0,
            api_timeout_seconds=120.0,
            drain_grace_seconds=0.5,
        )
        async with in_process_worker(settings), aiohttp.ClientSession() as session:
            livez = f"http://127.0.0.1:{settings.http_port}/livez"
            async with session.get(livez) as response:
                assert response.status == 200
            await produce(
                kafka_bootstrap,
                topics["commands"],
                [{"command": "agent.list", "id": f"stuck-{i}"} for i in range(10)],
            )
            verdict: dict[str, object] = {}
            for _ in range(100):
                async with session.get(livez) as response:
                    verdict = await response.json()
                    if response.status == 503:
                        break
                await asyncio.sleep(0.1)
    assert verdict["ok"] is False
    assert "stalled" in str(verdict["reason"])


async def test_no_secret_reaches_any_log_line(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    """A full run at DEBUG level, with credentials and API keys in commands, logs none of them."""
    customer_id, customer_secret = "customer-id-4711", "customer-secret-f00d-cafe"
    webhook_secret = "ncs-webhook-secret-0042"
    config = EmulatorConfig(
        customer_id=customer_id, customer_secret=customer_secret, max_agents_per_app=1000
    )
    async with running_emulator(config) as emulator:
        commands = agent_lifecycle("sec", 3)
        properties = agent_properties("room")
        properties["llm"]["api_key"] = "llm-api-key-abcdef123456"
        properties["tts"]["params"]["key"] = "tts-vendor-key-987654321"
        properties["token"] = "rtc-token-5a5a5a5a5a5a"
        commands.append(
            {"command": "agent.start", "id": "sec-x", "name": "sec-x", "properties": properties}
        )
        commands.append({"command": "agent.speak", "id": "bad", "agent_id": "A", "text": 1})
        await produce(kafka_bootstrap, topics["commands"], commands)
        settings = make_settings(
            kafka_bootstrap,
            topics,
            emulator.api_url,
            customer_id=customer_id,
            customer_secret=customer_secret,
            webhook_secret=webhook_secret,
            log_level="DEBUG",
        )
        log = tmp_path / "worker.log"
        worker = spawn_worker(settings, str(log))
        try:
            await wait_ready(settings.http_port)
            await wait_for_results(kafka_bootstrap, topics["results"], {c["id"] for c in commands})
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    f"http://127.0.0.1:{settings.http_port}/webhooks/agora",
                    data=b"{}",
                    headers={"Agora-Signature-V2": "0" * 64},
                ) as response,
            ):
                assert response.status == 401
        finally:
            assert await stop_process(worker) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert len(text.splitlines()) > 10, "the scenario produced log lines to check"
    basic = base64.b64encode(f"{customer_id}:{customer_secret}".encode()).decode()
    for secret in (
        customer_secret,
        basic,
        webhook_secret,
        "llm-api-key-abcdef123456",
        "tts-vendor-key-987654321",
        "rtc-token-5a5a5a5a5a5a",
    ):
        assert secret not in text, f"secret {secret[:6]}… leaked into the log"


async def test_a_transactional_producer_leaves_no_lag_and_aborted_commands_never_run(
    kafka_bootstrap: str, topics: dict[str, str], emulator: RunningEmulator
) -> None:
    """Commit markers follow the last command: the committed offset still reaches the end."""
    committed_ids = {f"tx-{i}" for i in range(8)}
    await produce_transactionally(kafka_bootstrap, topics["commands"], sorted(committed_ids))
    await produce_transactionally(kafka_bootstrap, topics["commands"], ["tx-aborted"], abort=True)
    settings = make_settings(kafka_bootstrap, topics, emulator.api_url)
    group, commands = settings.group_id, topics["commands"]
    async with in_process_worker(settings), aiohttp.ClientSession() as session:
        results = await wait_for_results(kafka_bootstrap, topics["results"], committed_ids)
        deadline = asyncio.get_running_loop().time() + 30
        # the coordinator writes transaction markers after the producer's call returns: the
        # ends are read each time, not before
        while (committed := await committed_offsets(kafka_bootstrap, group, commands)) != (
            ends := await end_offsets(kafka_bootstrap, commands)
        ):
            assert asyncio.get_running_loop().time() < deadline, (committed, ends)
            await asyncio.sleep(0.2)
        samples = await scrape(settings.http_port)
        async with session.get(f"http://127.0.0.1:{settings.http_port}/livez") as response:
            report = await response.json()
    assert total(samples, "convoai_consumer_lag_records") == 0
    assert report["details"]["backlog_records"] == 0
    assert {r.command_id for r in results} == committed_ids
    assert not [r for r in emulator.requests("agent.get") if r["path"].endswith("/tx-aborted")]


async def produce_transactionally(
    bootstrap: str, topic: str, ids: list[str], *, abort: bool = False
) -> None:
    """agent.get commands (id = agent id) in one transaction, committed or aborted."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"tx-{ids[0]}")
    await producer.start()
    try:
        await producer.begin_transaction()
        for cid in ids:
            value = msgspec.json.encode({"command": "agent.get", "id": cid, "agent_id": cid})
            await producer.send(topic, value, key=cid.encode())
        await (producer.abort_transaction() if abort else producer.commit_transaction())
    finally:
        await producer.stop()
