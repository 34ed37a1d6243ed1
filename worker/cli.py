"""The `convoai-worker` command line.

Each subcommand lives in its own module exposing `configure(parser)` and `run(args) -> int`;
`COMMANDS` lists them. Only the module of the chosen command is imported, so `--help` stays fast
and `send` does not import the emulator.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn, Protocol

from worker import __version__
from worker.commands.exit_codes import INTERRUPTED, INVALID, TABLE, CommandLineError
from worker.settings import SettingsError


class CommandModule(Protocol):
    """What a subcommand module provides."""

    def configure(self, parser: argparse.ArgumentParser) -> None: ...
    def run(self, args: argparse.Namespace) -> int: ...


# name -> (module, one-line help shown by `convoai-worker --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "worker.commands.run",
        "run the worker: consume commands, execute them, publish events",
    ),
    "send": ("worker.commands.send", "produce commands from JSON lines (file or stdin) to Kafka"),
    "validate": (
        "worker.commands.validate",
        "check a JSON-lines command file like send does, without a broker",
    ),
    "tail": ("worker.commands.tail", "follow the results, agent-state and dead-letter topics"),
    "dlq": ("worker.commands.dlq", "dead letters: `dlq replay` re-produces them as commands"),
    "config": ("worker.commands.config", "print the effective settings (secrets masked) and exit"),
    "exec": ("worker.commands.exec", "execute one command against the API and print its result"),
    "emulator": ("worker.commands.emulator", "serve the ConvoAI API emulator on --port"),
    "schema": (
        "worker.commands.schema",
        "print the JSON Schema or AsyncAPI document of the contract",
    ),
    "completion": (
        "worker.commands.completion",
        "print a shell completion script (bash, zsh, tcsh)",
    ),
}


class Parser(argparse.ArgumentParser):
    """argparse with usage errors in one line (naming the flag) instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        """Print `PROG: MESSAGE (see PROG --help)` and exit 2."""
        self.exit(INVALID, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser(argv: Sequence[str], *, every: bool = False) -> argparse.ArgumentParser:
    """The parser for `argv`; only the chosen subcommand's module is imported and configured
    (`every` configures all of them, for shell completion)."""
    parser = Parser(
        prog="convoai-worker",
        description=(
            "Consume Agora Conversational AI commands from Kafka, execute them against the "
            "ConvoAI REST API and publish one result event per command. Settings come from "
            "CONVOAI_* environment variables (see README); flags override them."
        ),
        epilog=TABLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)
    chosen = next((arg for arg in argv if arg in COMMANDS), None)
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=TABLE,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if every or name == chosen:
            module = _import_command(module_name, parser, needed=name == chosen)
            if module is not None:
                module.configure(sub_parser)
                sub_parser.set_defaults(handler=module.run)
    return parser


# Subcommands whose code ships in a distribution of its own, not installed in production images.
OPTIONAL = {"worker.emulator": "convoai-emulator"}


def _import_command(
    module_name: str, parser: argparse.ArgumentParser, *, needed: bool
) -> CommandModule | None:
    """The subcommand's module; when an optional distribution it needs is missing, a one-line
    error if it was asked for (None when only listing every command)."""
    try:
        module: CommandModule = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = next((d for m, d in OPTIONAL.items() if (exc.name or "").startswith(m)), None)
        if missing is None:
            raise
        if needed:
            parser.exit(INVALID, f"{parser.prog}: this needs {missing}: pip install {missing}\n")
        return None
    return module


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # Without a configured handler, Python prints aiokafka's connection errors on stderr next
    # to the command's own one-line message; `run` configures logging and still sees them.
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    args = build_parser(argv).parse_args(argv)
    try:
        exit_code: int = args.handler(args)
    except SettingsError as exc:
        sys.stderr.write(f"convoai-worker: invalid setting: {exc}\n")
        return INVALID
    except CommandLineError as exc:
        sys.stderr.write(f"convoai-worker {args.subcommand}: {exc}\n")
        return exc.code
    except KeyboardInterrupt:
        return INTERRUPTED
    return exit_code
