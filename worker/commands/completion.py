"""`convoai-worker completion SHELL`: print a tab-completion script for the shell.

    convoai-worker completion bash > ~/.local/share/bash-completion/completions/convoai-worker
    convoai-worker completion zsh > "${fpath[1]}/_convoai-worker"

The script is generated from the same argparse parser the command line uses, with every
subcommand configured, so it completes every command, flag and choice of this version.
"""

from __future__ import annotations

import argparse
import sys

import shtab

from worker.commands.exit_codes import OK

SHELLS = ("bash", "zsh", "tcsh")


def configure(parser: argparse.ArgumentParser) -> None:
    """The shell."""
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")


def run(args: argparse.Namespace) -> int:
    """Print the completion script on stdout."""
    from worker.cli import build_parser  # noqa: PLC0415 - the CLI imports this module

    script = shtab.complete(build_parser([], every=True), shell=args.shell)
    sys.stdout.write(script if script.endswith("\n") else script + "\n")
    return OK
