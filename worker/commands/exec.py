"""`convoai-worker exec`: run one command through the worker's executor and print its result.

The command is decoded by `contracts` and executed by the same `Executor` the worker uses
(policy, retries, reconciliation), against the API that `CONVOAI_API_BASE_URL` names, so an
operator can try one command by hand. Names are resolved through the API (there is no state
topic here). The result event is printed as JSON on stdout. Exit status: 0 when the outcome is
`succeeded`, 1 for any other outcome, 2 when the input is not a valid command, 3 when the API
could not be reached. `--verbose` prints every attempt and backoff on stderr as it happens.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

import msgspec

from contracts import CommandDecodeError, DecodedCommand, ResultEvent, decode_command, encode_event
from worker.agents.directory import AgentDirectory
from worker.api.client import ConvoAIClient
from worker.api.observer import ApiObserver, NullObserver
from worker.commands import lines
from worker.commands.configured import settings_for
from worker.commands.exit_codes import NOT_SUCCEEDED, OK, UNREACHABLE, CommandLineError
from worker.commands.inputs import STDIN, argument_bytes, open_source, require_utf8
from worker.event_loop import run_async
from worker.execution import Executor
from worker.settings import Settings

# Errors without an HTTP status after the retries: no answer came back at all.
NO_ANSWER = frozenset({"retries_exhausted", "transport_error"})


class AttemptPrinter:
    """Prints each attempt and each backoff on stderr, so a retrying command is not silent."""

    def __init__(self) -> None:
        self._attempt = 0

    def request_finished(self, operation: str, status_class: str, seconds: float) -> None:
        """`attempt 1: agent.start -> 5xx in 12 ms`."""
        self._attempt += 1
        sys.stderr.write(
            f"attempt {self._attempt}: {operation} -> {status_class} in {seconds * 1000:.0f} ms\n"
        )
        sys.stderr.flush()

    def retry_scheduled(self, operation: str, reason: str, delay: float) -> None:
        """`retrying agent.start in 0.35 s (server_error)`."""
        sys.stderr.write(f"retrying {operation} in {delay:.2f} s ({reason})\n")
        sys.stderr.flush()

    def unreadable_response(self, operation: str) -> None:
        """`warning: agent.speak answered 2xx with a body that is not JSON`."""
        sys.stderr.write(f"warning: {operation} answered 2xx with a body that is not JSON\n")
        sys.stderr.flush()


def configure(parser: argparse.ArgumentParser) -> None:
    """The command comes from the argument, a file, or stdin (`-`)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("command", nargs="?", help="the command as JSON, or - to read stdin")
    source.add_argument("--file", help="read the command from this file")
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="print every attempt and backoff on stderr"
    )


def run(args: argparse.Namespace) -> int:
    """Decode, execute, print the result event; the exit status reflects the outcome."""
    data, source = _read_input(args)
    text = require_utf8(data, source)
    _refuse_json_lines(data, source)
    try:
        decoded = decode_command(text)
    except CommandDecodeError as error:
        raise CommandLineError(f"invalid command: {error}") from None
    settings = settings_for(api=True)
    observer: ApiObserver = AttemptPrinter() if args.verbose else NullObserver()
    result = run_async(_execute(settings, decoded, observer))
    sys.stdout.write(encode_event(result).decode() + "\n")
    return exit_code(result)


def exit_code(result: ResultEvent) -> int:
    """0 succeeded; 3 when the API never answered; 1 for any other outcome."""
    if result.outcome == "succeeded":
        return OK
    error = result.error
    if error is not None and error.http_status is None and error.code in NO_ANSWER:
        return UNREACHABLE
    return NOT_SUCCEEDED


def _refuse_json_lines(data: bytes, source: str) -> None:
    """A JSON-lines file is several commands; say so instead of "trailing characters".

    A command pretty-printed over several lines is still one: only input whose first line is a
    JSON value of its own and that has more lines counts as JSON lines.
    """
    numbered = list(lines.numbered(data))
    if len(numbered) < 2:
        return
    try:
        msgspec.json.decode(numbered[0][1])
    except msgspec.DecodeError:
        return
    raise CommandLineError(
        f"{source}: {len(numbered)} lines of JSON, but exec runs one command; "
        "`convoai-worker send` produces a JSON-lines file (`validate` checks it)"
    )


def _read_input(args: argparse.Namespace) -> tuple[bytes, str]:
    if args.file is not None:
        return open_source(args.file, what="--file")
    if args.command == STDIN:
        return open_source(STDIN, what="input")
    return argument_bytes(args.command), "the command argument"


async def _execute(
    settings: Settings, decoded: DecodedCommand, observer: ApiObserver
) -> ResultEvent:
    async with ConvoAIClient(settings) as client:
        executor = Executor(client, settings, AgentDirectory(), observer=observer)
        execution = await executor.execute(decoded, received_at=datetime.now(UTC))
    return execution.result
