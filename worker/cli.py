"""The `convoai-worker` command line.

Each subcommand lives in its own module exposing `configure(parser)` and `run(args) -> int`;
`COMMANDS` lists them. Modules are imported when their command runs, so `--help` stays fast and
`send` does not import the emulator.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol

from worker import __version__
from worker.settings import SettingsError


class CommandModule(Protocol):
    """What a subcommand module provides."""

    def configure(self, parser: argparse.ArgumentParser) -> None: ...
    def run(self, args: argparse.Namespace) -> int: ...


# name -> (module, one-line help shown by `convoai-worker --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("worker.commands.config", "print the effective settings (secrets masked) and exit"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; subparsers are configured lazily from `COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="convoai-worker",
        description=(
            "Consume Agora Conversational AI commands from Kafka, execute them against the "
            "ConvoAI REST API and publish one result event per command. Settings come from "
            "CONVOAI_* environment variables (see README); flags override them."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module: CommandModule = importlib.import_module(module_name)
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.configure(sub_parser)
        sub_parser.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        exit_code: int = args.handler(args)
    except SettingsError as exc:
        sys.stderr.write(f"convoai-worker: invalid setting: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    return exit_code
