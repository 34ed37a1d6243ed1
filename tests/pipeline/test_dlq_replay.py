"""`convoai-worker dlq replay` against the real broker and a running worker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer

from contracts.headers import DLQ_TRUNCATED
from tests.console import SCRIPT
from tests.emulator.harness import RunningEmulator
from tests.pipeline.harness import (
    committed_offsets,
    end_offsets,
    in_process_worker,
    make_settings,
    produce,
    settings_env,
    wait_for_results,
)
from worker.emulator.faults import FaultRule, FaultSettings

pytestmark = pytest.mark.kafka


async def console(*args: str, env: dict[str, str]) -> tuple[int, list[str]]:
    """Run the console script; exit code and stderr lines (stdin is not a terminal)."""
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, err.decode().splitlines()


async def until(condition: Callable[[], object], what: str) -> None:
    for _ in range(120):
        if await condition():  # type: ignore[misc]
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_fixed_failure_is_replayed_once_and_a_cut_letter_is_skipped(
    kafka_bootstrap: str, topics: dict[str, str], emulator: RunningEmulator
) -> None:
    settings = make_settings(kafka_bootstrap, topics, emulator.api_url, api_max_attempts=1)
    env = settings_env(settings)
    emulator.faults.replace(FaultSettings(rules=[FaultRule(operation="agent.list", status=503)]))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:  # a dead letter whose value was cut to fit: never replayed as it is
        await producer.send_and_wait(
            topics["dlq"], b'{"command":"agent.li', key=b"k", headers=[(DLQ_TRUNCATED, b"true")]
        )
    finally:
        await producer.stop()

    async def all_handled() -> bool:
        end = await end_offsets(kafka_bootstrap, topics["commands"])
        done = await committed_offsets(kafka_bootstrap, settings.group_id, topics["commands"])
        return all(done.get(p, 0) >= offset for p, offset in end.items())

    async with in_process_worker(settings):
        await produce(kafka_bootstrap, topics["commands"], [{"command": "agent.list", "id": "d-1"}])
        first = await wait_for_results(kafka_bootstrap, topics["results"], {"d-1"})
        assert [r.outcome for r in first] == ["failed"]  # and dead-lettered
        emulator.faults.replace(FaultSettings())  # the cause is fixed

        code, lines = await console("dlq", "replay", "--command", "agent.list", env=env)
        assert code == 0, "\n".join(lines)
        assert lines[-1] == "nothing replayed (pass --yes to replay without asking)"

        code, lines = await console("dlq", "replay", "--yes", env=env)
        assert code == 1  # one dead letter skipped
        assert lines[0] == (
            f"skipped {topics['dlq']}[0]@0 (from ?[?]@?): "
            "its value was cut to fit the dead-letter topic"
        )
        assert lines[1] == (
            f"1 dead letter(s) to replay from {topics['dlq']} to {topics['commands']} "
            "(agent.list 1), 1 skipped"
        )
        assert lines[2] == f"replayed 1 dead letter(s) to {topics['commands']}, skipped 1"
        await until(all_handled, "the replay handled")
        again = await wait_for_results(kafka_bootstrap, topics["results"], {"d-1"})
        assert [r.outcome for r in again] == ["failed", "succeeded"]

        # replaying the same dead letter again does not run the command a third time
        code, _ = await console("dlq", "replay", "--yes", "--command", "agent.list", env=env)
        assert code == 0
        await until(all_handled, "the second replay handled")
    assert len(emulator.log.entries("agent.list")) == 2
    final = await wait_for_results(kafka_bootstrap, topics["results"], {"d-1"})
    assert len(final) == 2


async def test_new_ids_run_as_new_commands(
    kafka_bootstrap: str, topics: dict[str, str], emulator: RunningEmulator
) -> None:
    """`--new-ids` derives the id from the dead letter's position (so twice is still once)."""
    settings = make_settings(kafka_bootstrap, topics, emulator.api_url, api_max_attempts=1)
    emulator.faults.replace(FaultSettings(rules=[FaultRule(operation="agent.list", status=503)]))
    async with in_process_worker(settings):
        await produce(kafka_bootstrap, topics["commands"], [{"command": "agent.list", "id": "n-1"}])
        await wait_for_results(kafka_bootstrap, topics["results"], {"n-1"})
        emulator.faults.replace(FaultSettings())
        code, _ = await console("dlq", "replay", "--yes", "--new-ids", env=settings_env(settings))
        assert code == 0
        results = await wait_for_results(
            kafka_bootstrap, topics["results"], {"n-1", "n-1~replay-0-0"}
        )
    assert {(r.command_id, r.outcome) for r in results} == {
        ("n-1", "failed"),
        ("n-1~replay-0-0", "succeeded"),
    }
