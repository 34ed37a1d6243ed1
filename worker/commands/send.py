"""`convoai-worker send`: produce commands from JSON lines, keyed by the ordering rules.

Every line is checked with the same decoder the worker uses before anything is produced, so a
typo is reported with its line number instead of landing in the dead-letter topic; refused
lines are reported before Kafka is contacted. `--dry-run` stops there (like `validate`);
`--raw` skips the check (to exercise the worker's own rejection path).
"""

from __future__ import annotations

import argparse
import sys

from aiokafka.errors import KafkaError

from worker.commands import lines
from worker.commands.configured import settings_for
from worker.commands.exit_codes import NOT_SUCCEEDED, OK
from worker.commands.inputs import open_source
from worker.commands.kafka_errors import kafka_failure
from worker.commands.producing import Outgoing, produce_all
from worker.commands.validate import print_verdict
from worker.event_loop import run_async


def configure(parser: argparse.ArgumentParser) -> None:
    """Input selection and the target topic."""
    parser.add_argument(
        "file", nargs="?", default="-", help="JSON lines file, one command per line (- = stdin)"
    )
    parser.add_argument("--topic", help="command topic (default: CONVOAI_TOPIC_COMMANDS)")
    parser.add_argument("--bootstrap", help="Kafka bootstrap (default: CONVOAI_KAFKA_BOOTSTRAP)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--raw", action="store_true", help="send lines as they are, without checking them"
    )
    mode.add_argument(
        "--dry-run", action="store_true", help="check the lines like `validate`, send nothing"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Validate and produce every line; exit 1 when any line was refused, 0 otherwise."""
    data, source = open_source(args.file, what="file")
    lines.require_some(data, source)
    if args.dry_run:
        return print_verdict(lines.check(data), source)
    if args.raw:
        checked = lines.Checked(lines.unchecked(data), [])
    else:
        checked = lines.check(data)
        lines.report(checked.refused)
    settings = settings_for(
        api=False,
        flags={"kafka_bootstrap": "--bootstrap", "topic_commands": "--topic"},
        kafka_bootstrap=args.bootstrap,
        topic_commands=args.topic,
    )
    topic = settings.topic_commands
    try:
        records = [Outgoing(line.key, line.value, []) for line in checked.lines]
        sent = run_async(produce_all(settings, topic, records, quiet=args.quiet, unit="cmd"))
    except (KafkaError, TimeoutError) as error:
        raise kafka_failure(
            f"nothing sent to {topic} on {settings.kafka_bootstrap}", error
        ) from None
    refused = len(checked.refused)
    sys.stderr.write(
        f"sent {sent} command(s) to {topic}"
        + (f", refused {refused} invalid line(s)" if refused else "")
        + "\n"
    )
    return NOT_SUCCEEDED if refused else OK
