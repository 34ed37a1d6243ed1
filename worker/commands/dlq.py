"""`convoai-worker dlq replay`: re-produce dead-lettered commands once their cause is fixed.

Reads the dead-letter topic (optionally from `--since` to `--until`, one `--command` type, the
first `--limit`), shows what it would replay, asks (or takes `--yes`), then produces each
original record to the commands topic with a replay marker, so the worker runs it although
its id is done, once (`worker.commands.replay`). Dead letters that cannot be replayed as they
are (cut to fit, no value) are listed and skipped: exit 1 when any was.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from aiokafka.errors import KafkaError

from contracts import COMMAND_TYPES
from worker.commands import replay
from worker.commands.arguments import moment, positive_int
from worker.commands.configured import settings_for
from worker.commands.dlq_reader import read_dead_letters
from worker.commands.exit_codes import NOT_SUCCEEDED, OK, CommandLineError
from worker.commands.kafka_errors import kafka_failure
from worker.commands.producing import Outgoing, produce_all
from worker.event_loop import run_async
from worker.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    """`dlq replay` and its filters."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    replay_parser = actions.add_parser(
        "replay",
        help="re-produce dead-lettered commands to the commands topic",
        description=(
            "Re-produce dead-lettered commands (original key, value and headers) to the commands "
            "topic with a replay marker: the worker runs each once, although its id already has "
            "a result. Dead letters cut to fit the topic or without a value are listed and "
            "skipped. Without --yes it shows the plan and asks (on a terminal) or stops."
        ),
        epilog=parser.epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay_parser.add_argument(
        "--since", type=moment, help="dead-lettered at or after (RFC 3339, or 30m, 2h, 7d ago)"
    )
    replay_parser.add_argument("--until", type=moment, help="dead-lettered at or before")
    replay_parser.add_argument(
        "--command", type=command_type, help="only this command type, e.g. agent.start"
    )
    replay_parser.add_argument(
        "--limit", type=positive_int, help="at most this many (the oldest first)"
    )
    replay_parser.add_argument(
        "--new-ids",
        action="store_true",
        help="give each command a new id (<id>~replay-<partition>-<offset>)",
    )
    replay_parser.add_argument("--yes", "-y", action="store_true", help="replay without asking")
    replay_parser.add_argument(
        "--bootstrap", help="Kafka bootstrap (default: CONVOAI_KAFKA_BOOTSTRAP)"
    )
    replay_parser.add_argument("--quiet", action="store_true", help="no progress bar")


def command_type(text: str) -> str:
    """One of the 19 command names."""
    if text not in COMMAND_TYPES:
        raise argparse.ArgumentTypeError(
            f"expected one of {', '.join(COMMAND_TYPES)}, got {text!r}"
        )
    return text


def run(args: argparse.Namespace) -> int:
    """Read, plan, confirm, produce, summarise."""
    settings = settings_for(
        api=False, flags={"kafka_bootstrap": "--bootstrap"}, kafka_bootstrap=args.bootstrap
    )
    if args.since and args.until and args.since > args.until:
        raise CommandLineError("--since must not be later than --until")
    window = replay.Window(args.since, args.until, args.command)
    try:
        letters = run_async(
            read_dead_letters(settings, settings.topic_dlq, since=args.since, keep=window.admits)
        )
    except KafkaError as error:
        raise kafka_failure(f"cannot read {settings.topic_dlq}", error) from None
    replays, skipped = replay.plan(settings.topic_dlq, letters, new_ids=args.new_ids)
    replays = replays[: args.limit] if args.limit else replays
    for item in skipped:
        letter = item.letter
        where = f"{settings.topic_dlq}[{letter.partition}]@{letter.offset}"
        sys.stderr.write(f"skipped {where} (from {letter.source}): {item.reason}\n")
    sys.stderr.write(_plan_line(replays, skipped, settings) + "\n")
    if replays and not _confirmed(args.yes):
        sys.stderr.write("nothing replayed (pass --yes to replay without asking)\n")
        return NOT_SUCCEEDED if skipped else OK
    records = [Outgoing(item.key, item.value, item.headers) for item in replays]
    try:
        sent = run_async(
            produce_all(
                settings,
                settings.topic_commands,
                records,
                quiet=args.quiet,
                unit="record",
            )
        )
    except (KafkaError, TimeoutError) as error:
        raise kafka_failure(f"cannot produce to {settings.topic_commands}", error) from None
    sys.stderr.write(
        f"replayed {sent} dead letter(s) to {settings.topic_commands}, skipped {len(skipped)}\n"
    )
    return NOT_SUCCEEDED if skipped else OK


def _plan_line(
    replays: list[replay.Replay], skipped: list[replay.Skipped], settings: Settings
) -> str:
    kinds = Counter(item.letter.command or "unreadable" for item in replays)
    detail = ", ".join(f"{name} {count}" for name, count in sorted(kinds.items()))
    return (
        f"{len(replays)} dead letter(s) to replay from {settings.topic_dlq} to "
        f"{settings.topic_commands}"
        + (f" ({detail})" if detail else "")
        + f", {len(skipped)} skipped"
    )


def _confirmed(yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        return False
    sys.stderr.write("replay them? [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in {"y", "yes"}
