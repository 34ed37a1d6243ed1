"""JSON-lines command files, checked the way the worker will see each line.

`send` and `validate` share this, so a file that validates is exactly a file that `send`
produces in full. A line is refused when the worker's decoder refuses it, and when its `id`
repeats an earlier line's: the worker would take the second for a redelivery and skip it.
Blank lines and lines starting with `#` are comments.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import IO, Any, NamedTuple

import msgspec

from contracts import CommandDecodeError, decode_command
from contracts.keys import ordering_key
from worker.commands.exit_codes import CommandLineError


class Line(NamedTuple):
    """A line to produce: its number in the file, the record value and key."""

    number: int
    value: bytes
    key: bytes | None


class Refused(NamedTuple):
    """A line that is not a valid command, and why."""

    number: int
    reason: str


class Checked(NamedTuple):
    """A file's lines to produce and the lines refused."""

    lines: list[Line]
    refused: list[Refused]


def check(data: bytes) -> Checked:
    """Every line decoded as a command; valid ones keyed by the ordering rules."""
    lines: list[Line] = []
    refused: list[Refused] = []
    first_line_of: dict[str, int] = {}
    for number, raw in numbered(data):
        try:
            decoded = decode_command(raw)
        except CommandDecodeError as error:
            refused.append(Refused(number, str(error)))
            continue
        command_id = decoded.command.id
        if command_id in first_line_of:
            reason = (
                f"$.id: {command_id!r} is already the id of line {first_line_of[command_id]}; "
                "the worker would skip this line as done"
            )
            refused.append(Refused(number, reason))
            continue
        first_line_of[command_id] = number
        lines.append(Line(number, raw, _key(msgspec.json.decode(raw))))
    return Checked(lines, refused)


def unchecked(data: bytes) -> list[Line]:
    """Every line as it is, keyed when it is a JSON object with the fields a key comes from."""
    lines = []
    for number, raw in numbered(data):
        try:
            obj: Any = msgspec.json.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            obj = None
        lines.append(Line(number, raw, _key(obj)))
    return lines


def require_some(data: bytes, source: str) -> None:
    """Refuse input without a single line to check: an empty file is a wrong path or a failed
    export, which must not pass as "0 refused"."""
    if next(numbered(data), None) is None:
        raise CommandLineError(f"{source}: no commands: it is empty or holds only comments")


def report(refused: list[Refused], out: IO[str] = sys.stderr) -> None:
    """`line N: reason` for each refused line."""
    for line in refused:
        out.write(f"line {line.number}: {line.reason}\n")


def numbered(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(line number, stripped line) of every line that is not blank or a comment."""
    for number, line in enumerate(data.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith(b"#"):
            yield number, stripped


def _key(obj: object) -> bytes | None:
    key = ordering_key(obj) if isinstance(obj, dict) else None
    return key.encode() if key else None
