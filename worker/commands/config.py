"""`convoai-worker config`: show the settings the worker would run with, or check them.

Operators use it to check what a pod's environment resolves to without starting consumption.
The settings are loaded and checked exactly as `run` loads them, so a setting `config` accepts
is one the worker accepts. `--check` also connects: Kafka and the topics, the API with each
tenant's credentials, and the webhook secret (`worker.commands.preflight`).
"""

from __future__ import annotations

import argparse
import sys

import msgspec

from worker.commands.configured import settings_for
from worker.commands.exit_codes import NOT_SUCCEEDED, OK
from worker.commands.preflight import checks
from worker.event_loop import run_async
from worker.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    """The output is the resolved `CONVOAI_*` environment, or with `--check` the checks."""
    parser.add_argument(
        "--check",
        action="store_true",
        help="connect to Kafka (cluster and topics), the API (each tenant's credentials) and "
        "check the webhook secret; one line per check, exit 1 when any failed",
    )
    parser.add_argument(
        "--webhooks",
        action="store_true",
        help="with --check: Agora calls /webhooks/agora, so the webhook secret must be set",
    )


def run(args: argparse.Namespace) -> int:
    """Print the redacted settings as JSON, or run the checks."""
    settings = settings_for(api=True)
    if args.check:
        return run_async(_check(settings, webhooks=args.webhooks))
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(settings.redacted())).decode() + "\n")
    return OK


async def _check(settings: Settings, *, webhooks: bool) -> int:
    failed = False
    async for check in checks(settings, webhooks=webhooks):
        sys.stdout.write(check.line() + "\n")
        sys.stdout.flush()
        failed = failed or not check.ok
    return NOT_SUCCEEDED if failed else OK
