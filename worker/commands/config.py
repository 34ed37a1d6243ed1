"""`convoai-worker config`: show the settings the worker would run with.

Operators use it to check what a pod's environment resolves to without starting consumption.
"""

from __future__ import annotations

import argparse
import sys

import msgspec

from worker.commands.configured import settings_for


def configure(parser: argparse.ArgumentParser) -> None:
    """No options: the output is the resolved `CONVOAI_*` environment."""
    del parser


def run(args: argparse.Namespace) -> int:
    """Print the redacted settings as JSON."""
    del args
    settings = settings_for(api=True)
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(settings.redacted())).decode() + "\n")
    return 0
