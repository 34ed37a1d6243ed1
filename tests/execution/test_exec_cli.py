"""`convoai-worker exec` as an operator runs it: a subprocess against the emulator."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import pytest

from contracts import COMMAND_TYPES, ResultEvent, decode_result
from tests.emulator.harness import (
    APP_ID,
    CUSTOMER_ID,
    CUSTOMER_SECRET,
    LLM,
    TTS,
    RunningEmulator,
    start_body,
)
from worker.cli import main
from worker.emulator.rules import Rules

NUMBER = "+19876543210"


class Run(NamedTuple):
    code: int
    result: ResultEvent | None
    stderr: str


async def exec_cli(emulator: RunningEmulator, *args: str, stdin: bytes | None = None) -> Run:
    """Run `python -m worker exec ARGS` with settings aimed at the emulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVOAI_")}
    env |= {
        "CONVOAI_API_BASE_URL": emulator.api_url,
        "CONVOAI_CUSTOMER_ID": CUSTOMER_ID,
        "CONVOAI_CUSTOMER_SECRET": CUSTOMER_SECRET,
        "CONVOAI_APP_ID": APP_ID,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker",
        "exec",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout=60)
    assert process.returncode is not None
    result = decode_result(out) if out.strip() else None
    return Run(process.returncode, result, err.decode())


async def exec_all(emulator: RunningEmulator, commands: list[dict[str, Any]]) -> list[Run]:
    """Run one subprocess per command, concurrently."""
    return await asyncio.gather(
        *(exec_cli(emulator, msgspec.json.encode(c).decode()) for c in commands)
    )


def succeeded(runs: list[Run], commands: list[dict[str, Any]]) -> list[ResultEvent]:
    results = []
    for run, command in zip(runs, commands, strict=True):
        assert run.code == 0, (command["command"], run.stderr, run.result)
        assert run.result is not None
        assert (run.result.outcome, run.result.command) == ("succeeded", command["command"])
        results.append(run.result)
    return results


async def test_every_command_type_succeeds_through_exec(emulator: RunningEmulator) -> None:
    """All 19 commands, agents addressed by name (resolved through the API in each process).
    The agent runs at once, so that its history can be read in the same breath, and stays while
    the next processes start (which can take longer than an idle timeout on a busy machine)."""
    emulator.state.start_delay = 0.0
    emulator.state.rules = Rules(idle_exit=False)
    by_name = {"name": "cli-bot"}
    call = {
        "name": "cli-call",
        "sip": {
            "to_number": NUMBER,
            "from_number": "+11234567890",
            "rtc_uid": "9",
            "rtc_token": "t",
        },
        "properties": {
            "channel": "c",
            "token": "t",
            "agent_rtc_uid": "8",
            "remote_rtc_uids": ["9"],
            "llm": LLM,
            "tts": TTS,
        },
    }
    first: list[dict[str, Any]] = [
        {"command": "number.add", "id": "1", "provider": "byo", "phone_number": NUMBER,
         "label": "Sales", "inbound_config": {}, "outbound_config": {}},
        {"command": "agent.start", "id": "2", **start_body("cli-bot")},
        {"command": "call.start", "id": "3", **call},
    ]  # fmt: skip
    call_agent = succeeded(await exec_all(emulator, first), first)[2].agent_id
    assert call_agent is not None
    second: list[dict[str, Any]] = [
        {"command": "number.get", "id": "4", "phone_number": NUMBER},
        {"command": "number.list", "id": "5"},
        {"command": "number.update", "id": "6", "phone_number": NUMBER,
         "inbound_config": {"pipeline_id": "p"}},
        {"command": "agent.get", "id": "7", **by_name},
        {"command": "agent.list", "id": "8", "state": "1,2"},
        {"command": "agent.update", "id": "9", **by_name, "properties": {"token": "t2"}},
        {"command": "agent.speak", "id": "10", **by_name, "text": "Hello"},
        {"command": "agent.think", "id": "11", **by_name, "text": "Be brief"},
        {"command": "agent.interrupt", "id": "12", **by_name},
        {"command": "agent.history", "id": "13", **by_name},
        {"command": "agent.turns", "id": "14", **by_name},
        {"command": "call.list", "id": "15"},
        {"command": "call.get", "id": "16", "agent_id": call_agent},
    ]  # fmt: skip
    succeeded(await exec_all(emulator, second), second)
    third = [
        {"command": "agent.stop", "id": "17", **by_name},
        {"command": "call.hangup", "id": "18", "agent_id": call_agent},
        {"command": "number.delete", "id": "19", "phone_number": NUMBER},
    ]
    succeeded(await exec_all(emulator, third), third)
    assert {c["command"] for c in first + second + third} == set(COMMAND_TYPES)
    assert {e.operation for e in emulator.log.entries()} == set(COMMAND_TYPES)


async def test_file_and_stdin_input_and_the_failure_exit_status(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    """`--file` and `-` read the command; an outcome other than succeeded exits 1."""
    command_file = tmp_path / "start.json"
    command_file.write_bytes(
        msgspec.json.encode({"command": "agent.start", "id": "f", **start_body()})
    )
    speak = {"command": "agent.speak", "id": "s", "name": "nobody", "text": "hi"}
    from_file, from_stdin = await asyncio.gather(
        exec_cli(emulator, "--file", str(command_file)),
        exec_cli(emulator, "-", stdin=msgspec.json.encode(speak)),
    )
    assert from_file.code == 0
    assert from_file.result is not None
    assert from_file.result.outcome == "succeeded"
    assert from_stdin.code == 1
    assert from_stdin.result is not None
    assert from_stdin.result.error is not None
    assert (from_stdin.result.outcome, from_stdin.result.error.code) == (
        "failed",
        "agent_not_found",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "invalid command: $: "),
        ('{"command":"agent.speak","id":"x","agent_id":"A","text":5}', "$.text: expected str"),
        ('{"command":"agent.dance","id":"x"}', "unknown command 'agent.dance'"),
    ],
)
def test_invalid_input_exits_2_with_the_decode_error(
    capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    """Nothing is executed; stderr says where and what, stdout stays empty."""
    assert main(["exec", text]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err
