"""`make run`: the worker end to end on local defaults.

Starts the ConvoAI emulator and a worker (the local broker is started by `scripts/with-kafka`),
plays `examples/scenario.jsonl` through Kafka, prints every result, agent-state change and
dead-letter record as it arrives, hangs up the phone call it placed, then stops what it started.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts import decode_result
from contracts.keys import ordering_key
from devtools.local import free_port, wait_for_port
from worker.commands.render import render
from worker.kafka.topics import ensure_topics
from worker.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "examples" / "scenario.jsonl"
TIMEOUT_SECONDS = 60.0


def load_scenario(run: str) -> list[dict[str, Any]]:
    """The scenario's commands with this run's ids and agent names, plus one invalid command.

    The broker keeps results between runs, so reused ids would be skipped as already done. The
    invalid command (a number where text belongs) shows a rejection and a dead letter.
    """
    commands = []
    for line in SCENARIO.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            command = msgspec.json.decode(line)
            command["id"] = f"{command['id']}-{run}"
            if "name" in command:
                command["name"] = f"{command['name']}-{run}"
            commands.append(command)
    speaker = next(c["name"] for c in commands if c["command"] == "agent.speak")
    commands.append({"command": "agent.speak", "id": f"invalid-{run}", "name": speaker, "text": 42})
    return commands


async def produce(settings: Settings, commands: list[dict[str, Any]]) -> None:
    """Send commands keyed by the ordering rules, waiting for Kafka's acknowledgement."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for command in commands:
            key = ordering_key(command)
            await producer.send_and_wait(
                settings.topic_commands,
                value=msgspec.json.encode(command),
                key=key.encode() if key else None,
            )
    finally:
        await producer.stop()


async def play(settings: Settings, run: str) -> Counter[str]:
    """Play the scenario and print events until every command has its result."""
    follower = AIOKafkaConsumer(
        settings.topic_results,
        settings.topic_state,
        settings.topic_dlq,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="latest",
    )
    await follower.start()
    outcomes: Counter[str] = Counter()
    try:
        await asyncio.sleep(1.0)  # let the follower settle at the topics' ends
        first = load_scenario(run)
        await produce(settings, first)
        expected = {c["id"] for c in first if isinstance(c.get("text", ""), str)}
        pending = set(expected)
        call_agent = ""
        number = next(c["phone_number"] for c in first if c["command"] == "number.add")
        deadline = time.monotonic() + TIMEOUT_SECONDS
        second_phase_sent = False
        while pending and time.monotonic() < deadline:
            batch = await follower.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    line, is_result = render(record, settings, as_json=False)
                    print(line, flush=True)
                    if not is_result:
                        continue
                    result = decode_result(record.value or b"")
                    pending.discard(result.command_id)
                    outcomes[result.outcome] += 1
                    if result.command == "call.start" and result.agent_id:
                        call_agent = result.agent_id
            if call_agent and not second_phase_sent and not pending:
                second = [
                    {"command": "call.get", "id": f"demo-20-{run}", "agent_id": call_agent},
                    {"command": "call.hangup", "id": f"demo-21-{run}", "agent_id": call_agent},
                    {"command": "number.delete", "id": f"demo-22-{run}", "phone_number": number},
                ]
                await produce(settings, second)
                pending |= {c["id"] for c in second}
                second_phase_sent = True
        if pending:
            raise SystemExit(
                f"demo: no result within {TIMEOUT_SECONDS:.0f} s for {sorted(pending)}"
            )
        await asyncio.sleep(1.0)  # trailing state events
        for records in (await follower.getmany(timeout_ms=500)).values():
            for record in records:
                print(render(record, settings, as_json=False)[0], flush=True)
    finally:
        await follower.stop()
    return outcomes


def main() -> int:
    """Start emulator and worker, play, stop them."""
    run = time.strftime("%H%M%S")
    emulator_port, worker_port = free_port(), free_port()
    env = {
        **os.environ,
        "CONVOAI_API_BASE_URL": f"http://127.0.0.1:{emulator_port}/api/conversational-ai-agent",
        "CONVOAI_APP_ID": os.environ.get("CONVOAI_APP_ID", "demo-app"),
        # the emulator requires credentials, as Agora does; these are the demo's own
        "CONVOAI_CUSTOMER_ID": "demo-customer",
        "CONVOAI_CUSTOMER_SECRET": "demo-customer-secret",
        "CONVOAI_HTTP_PORT": str(worker_port),
        "CONVOAI_LOG_FORMAT": "console",
        "CONVOAI_LOG_LEVEL": "WARNING",
    }
    settings = load_settings(env)
    cli = [sys.executable, "-m", "worker"]
    started: list[subprocess.Popen[bytes]] = []
    try:
        # the follower below reads the output topics before the worker would create them
        asyncio.run(ensure_topics(settings))
        # agents join at once, so the scripted history reads a running agent a few
        # milliseconds after its start (the emulator's default start takes a second)
        emulator = subprocess.Popen(
            [*cli, "emulator", "--port", str(emulator_port), "--start-delay", "0"], env=env
        )
        started.append(emulator)
        wait_for_port(emulator_port, emulator, "the emulator")
        worker = subprocess.Popen([*cli, "run"], env=env)
        started.append(worker)
        wait_for_port(worker_port, worker, "the worker")
        print(f"demo: emulator on :{emulator_port}, worker metrics on :{worker_port}/metrics")
        outcomes = asyncio.run(play(settings, run))
        summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
        print(f"demo: done — {summary}; the invalid command went to {settings.topic_dlq}")
        return 0
    finally:
        for process in reversed(started):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    sys.exit(main())
