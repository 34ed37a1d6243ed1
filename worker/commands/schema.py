"""`convoai-worker schema`: print the published contract documents.

They are the files generated from `contracts` and shipped with it (`contracts/schema/`), so a
team in another language gets exactly what this version of the worker validates against.
"""

from __future__ import annotations

import argparse
import sys
from importlib.resources import files

from worker.commands.exit_codes import OK, CommandLineError

DOCUMENTS = {
    ("jsonschema", "commands"): "commands.schema.json",
    ("jsonschema", "events"): "events.schema.json",
    ("asyncapi", "commands"): "asyncapi.yaml",
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Which document."""
    parser.add_argument(
        "--format",
        choices=("jsonschema", "asyncapi"),
        default="jsonschema",
        help="JSON Schema (draft 2020-12) of one record value, or the AsyncAPI 3.0 document of "
        "all topics (default: jsonschema)",
    )
    parser.add_argument(
        "--document",
        choices=("commands", "events"),
        help="with jsonschema: the command schema (default) or the result/agent-state event schema",
    )


def run(args: argparse.Namespace) -> int:
    """Print the document on stdout."""
    if args.format == "asyncapi" and args.document is not None:
        raise CommandLineError(
            "--document applies to --format jsonschema only; the AsyncAPI document covers "
            "commands and events"
        )
    name = DOCUMENTS[(args.format, args.document or "commands")]
    sys.stdout.write((files("contracts") / "schema" / name).read_text(encoding="utf-8"))
    return OK
