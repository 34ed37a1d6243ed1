"""`convoai-worker exec`: run one command through the worker's executor and print its result.

The command is decoded by `contracts` and executed by the same `Executor` the worker uses
(policy, retries, reconciliation), against the API that `CONVOAI_API_BASE_URL` names, so an
operator can try one command by hand. Names are resolved through the API (there is no state
topic here). The result event is printed as JSON on stdout; the exit status is 0 when the
outcome is `succeeded`, 1 for any other outcome, 2 when the input is not a valid command.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from contracts import CommandDecodeError, DecodedCommand, ResultEvent, decode_command, encode_event
from worker.api.client import ConvoAIClient
from worker.event_loop import run_async
from worker.execution import AgentDirectory, Executor
from worker.settings import Settings, load_settings

INVALID_INPUT = 2


def configure(parser: argparse.ArgumentParser) -> None:
    """The command comes from the argument, a file, or stdin (`-`)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("command", nargs="?", help="the command as JSON, or - to read stdin")
    source.add_argument("--file", type=Path, help="read the command from this file")


def run(args: argparse.Namespace) -> int:
    """Decode, execute, print the result event; the exit status reflects the outcome."""
    text = _read_input(args)
    try:
        decoded = decode_command(text)
    except CommandDecodeError as error:
        sys.stderr.write(f"convoai-worker exec: invalid command: {error}\n")
        return INVALID_INPUT
    settings = load_settings()
    result = run_async(_execute(settings, decoded))
    sys.stdout.write(encode_event(result).decode() + "\n")
    return 0 if result.outcome == "succeeded" else 1


def _read_input(args: argparse.Namespace) -> str:
    if args.file is not None:
        return str(Path(args.file).read_text(encoding="utf-8"))
    if args.command == "-":
        return sys.stdin.read()
    return str(args.command)


async def _execute(settings: Settings, decoded: DecodedCommand) -> ResultEvent:
    async with ConvoAIClient(settings) as client:
        executor = Executor(client, settings, AgentDirectory())
        execution = await executor.execute(decoded, received_at=datetime.now(UTC))
    return execution.result
