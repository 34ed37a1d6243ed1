"""`convoai-worker send` and `tail` against the real broker."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import msgspec
import pytest

from contracts.keys import ordering_key
from tests.emulator.harness import RunningEmulator
from tests.pipeline.harness import (
    in_process_worker,
    make_settings,
    read_topic,
    settings_env,
)

pytestmark = pytest.mark.kafka


async def run_cli(*args: str, env: dict[str, str], stdin: bytes = b"") -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_send_checks_keys_and_reports_bad_lines(
    kafka_bootstrap: str, topics: dict[str, str], emulator: RunningEmulator, tmp_path: Path
) -> None:
    """Valid lines go out keyed by the ordering rules; invalid ones are named by line number."""
    settings = make_settings(kafka_bootstrap, topics, emulator.api_url)
    lines: list[dict[str, object]] = [
        {"command": "agent.speak", "id": "s-1", "name": "bot", "text": "hi"},
        {"command": "number.get", "id": "s-2", "phone_number": "+15550001"},
        {"command": "agent.speak", "id": "s-3", "name": "bot", "text": 5},
    ]
    path = tmp_path / "commands.jsonl"
    path.write_bytes(
        b"# a comment\n" + b"\n".join(msgspec.json.encode(c) for c in lines) + b"\n{oops\n"
    )
    # no --quiet: stderr is not a terminal, so there is no progress bar either
    code, _, err = await run_cli("send", str(path), env=settings_env(settings))
    assert code == 1
    assert err.splitlines() == [
        "line 4: $.text: expected str, got int",
        "line 5: $: JSON is malformed: object keys must be strings (byte 1)",
        f"sent 2 command(s) to {topics['commands']}, refused 2 invalid line(s)",
    ]
    records = await read_topic(kafka_bootstrap, topics["commands"])
    expected = [(str(ordering_key(c)).encode(), msgspec.json.encode(c)) for c in lines[:2]]
    assert sorted((r.key, r.value) for r in records) == sorted(expected)
    assert [key for key, _ in sorted(expected)] == [b"+15550001", b"bot"]


async def test_tail_prints_results_and_dead_letters(
    kafka_bootstrap: str, topics: dict[str, str], emulator: RunningEmulator
) -> None:
    """`tail --json` shows every result, state change and dead letter, then stops when asked."""
    settings = make_settings(kafka_bootstrap, topics, emulator.api_url)
    env = settings_env(settings)
    commands = (
        b'{"command":"agent.list","id":"t-1"}\n{"command":"agent.list","id":"t-2","limit":"x"}\n'
    )
    code, _, _ = await run_cli("send", "-", "--raw", "--quiet", env=env, stdin=commands)
    assert code == 0
    async with in_process_worker(settings):
        code, out, _ = await run_cli(
            "tail",
            "--json",
            "--from-beginning",
            "--max-results",
            "2",
            "--idle-timeout",
            "30",
            env=env,
        )
    assert code == 0
    events = [msgspec.json.decode(line) for line in out.splitlines()]
    results = {e["command_id"]: e["outcome"] for e in events if e["topic"] == "result"}
    assert results == {"t-1": "succeeded", "t-2": "rejected"}
    assert any(e["topic"] == "dlq" and "limit" in e["error"] for e in events)
