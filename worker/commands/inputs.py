"""Reading what a user points a command at: a file, `-` for stdin, or an argument.

Every failure is a `CommandLineError` naming the source and what is wrong with it, never a
traceback: a missing file, a directory, no permission, bytes that are not UTF-8 text.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from worker.commands.exit_codes import CommandLineError

STDIN = "-"


def open_source(name: str, *, what: str) -> tuple[bytes, str]:
    """The bytes of file `name` (or stdin for `-`) and how to name it in a message."""
    if name == STDIN:
        return sys.stdin.buffer.read(), "stdin"
    try:
        return Path(name).read_bytes(), name
    except IsADirectoryError:
        raise CommandLineError(f"{what} {name}: is a directory, expected a file") from None
    except FileNotFoundError:
        raise CommandLineError(f"{what} {name}: no such file") from None
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        raise CommandLineError(f"{what} {name}: cannot read it: {reason}") from None


def argument_bytes(text: str) -> bytes:
    """An argument as the bytes the user typed (undecodable bytes survive as they were)."""
    return os.fsencode(text)


def require_utf8(data: bytes, source: str) -> str:
    """`data` as text, or a one-line error saying where the first non-UTF-8 byte is."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise CommandLineError(
            f"{source}: not UTF-8 text (byte 0x{data[error.start]:02x} on line {line}); "
            "commands are UTF-8 JSON"
        ) from None
