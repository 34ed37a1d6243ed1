"""`convoai-worker validate`: check a JSON-lines command file without a broker.

Every line is checked exactly as `send` checks it (the worker's decoder, ids unique in the
file); each refused line is printed with its number and reason, then a summary. Exit 1 when
any line was refused, 2 when there is no line at all.
"""

from __future__ import annotations

import argparse
import sys

from worker.commands import lines
from worker.commands.exit_codes import NOT_SUCCEEDED, OK
from worker.commands.inputs import STDIN, open_source


def configure(parser: argparse.ArgumentParser) -> None:
    """The file to check."""
    parser.add_argument("file", help="JSON lines file, one command per line (- = stdin)")


def run(args: argparse.Namespace) -> int:
    """Check every line; print the refused ones and a summary."""
    data, source = open_source(args.file, what="file")
    lines.require_some(data, source)
    return print_verdict(lines.check(data), source)


def print_verdict(checked: lines.Checked, source: str) -> int:
    """Refused lines, then `SOURCE: N valid command(s), M refused` on stdout; the exit code."""
    lines.report(checked.refused, sys.stdout)
    name = "stdin" if source == STDIN else source
    sys.stdout.write(
        f"{name}: {len(checked.lines)} valid command(s), {len(checked.refused)} refused\n"
    )
    return NOT_SUCCEEDED if checked.refused else OK
