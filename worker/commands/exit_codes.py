"""The exit codes of every `convoai-worker` subcommand, and the error that ends one in a line.

One table for all subcommands, so scripts can tell "it ran, some things failed" (1) from "you
asked for something impossible" (2) and "the other side is down, try again later" (3).
"""

from __future__ import annotations

OK = 0
NOT_SUCCEEDED = 1
INVALID = 2
UNREACHABLE = 3
INTERRUPTED = 130

TABLE = """\
exit codes (every command):
  0    success
  1    finished, but not everything succeeded: a command's outcome was not `succeeded`,
       input lines were refused, dead letters were skipped, or the worker stopped on an error
  2    usage or invalid input: a flag, setting, file or command that is not allowed
  3    Kafka or the ConvoAI API cannot be reached
  130  interrupted (Ctrl-C)"""


class CommandLineError(Exception):
    """Ends a subcommand with one line on stderr (the message) and `code`.

    The message names the flag, variable or file at fault and what is allowed instead.
    """

    def __init__(self, message: str, code: int = INVALID) -> None:
        super().__init__(message)
        self.code = code


class UnreachableError(CommandLineError):
    """Kafka or the API cannot be reached (exit 3)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, UNREACHABLE)
