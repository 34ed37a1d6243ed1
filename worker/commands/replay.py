"""Choosing dead letters to replay and turning them back into command records.

A replayed record is the original key and value with the original headers, plus the replay
marker `contracts.headers.REPLAY` = `<dlq topic>:<partition>:<offset>`. The worker runs it even
though its command id already has a result, and at most once per marker, also when the replay
itself is redelivered or replayed twice (see `worker.pipeline.dedupe`). With new ids the command
gets a fresh id derived from the same position, so replaying twice still yields one id.

Not replayable, reported and skipped: a dead letter whose value was cut to fit the DLQ
(`convoai.dlq.truncated`), one whose secret fields were masked (`convoai.dlq.redacted`), one
whose original had no value, and (for new ids) one whose value is not a JSON object with an id.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

import msgspec

from contracts.headers import REPLAY
from worker.commands.dead_letters import DeadLetter

MAX_ID_CHARS = 128  # the contract's limit on `id`


class Window(NamedTuple):
    """Which dead letters to consider: by time written to the DLQ, by command type."""

    since: datetime | None = None
    until: datetime | None = None
    command: str | None = None

    def admits(self, letter: DeadLetter) -> bool:
        """Whether `letter` is in the window."""
        written = letter.timestamp_ms / 1000
        if self.since is not None and written < self.since.timestamp():
            return False
        if self.until is not None and written > self.until.timestamp():
            return False
        return self.command is None or letter.command == self.command


class Replay(NamedTuple):
    """A record to produce to the commands topic."""

    letter: DeadLetter
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


class Skipped(NamedTuple):
    """A dead letter that cannot be replayed, and why."""

    letter: DeadLetter
    reason: str


def marker(topic: str, letter: DeadLetter) -> str:
    """The replay marker of a dead letter: its own position."""
    return f"{topic}:{letter.partition}:{letter.offset}"


def plan(
    topic: str, letters: Iterable[DeadLetter], *, new_ids: bool
) -> tuple[list[Replay], list[Skipped]]:
    """The replays of `letters` (read from `topic`) and the letters that cannot be replayed."""
    replays: list[Replay] = []
    skipped: list[Skipped] = []
    for letter in letters:
        if letter.truncated:
            skipped.append(Skipped(letter, "its value was cut to fit the dead-letter topic"))
            continue
        if letter.redacted:
            reason = "its secret fields were masked (CONVOAI_DLQ_REDACT_SECRETS): send it again"
            skipped.append(Skipped(letter, f"{reason} from its source"))
            continue
        if letter.null_value or letter.value is None:
            skipped.append(Skipped(letter, "the original record had no value"))
            continue
        own = marker(topic, letter)
        value = letter.value
        if new_ids:
            renamed = _with_new_id(value, own)
            if renamed is None:
                skipped.append(Skipped(letter, "--new-ids: the value is not a command with an id"))
                continue
            value = renamed
        headers = [*letter.original_headers, (REPLAY, own.encode())]
        replays.append(Replay(letter, letter.key, value, headers))
    return replays, skipped


def new_id(command_id: str, own_marker: str) -> str:
    """`<id>~replay-<partition>-<offset>`, the id cut so the whole stays within 128 chars."""
    _, partition, offset = own_marker.rsplit(":", 2)
    suffix = f"~replay-{partition}-{offset}"
    return command_id[: MAX_ID_CHARS - len(suffix)] + suffix


def _with_new_id(value: bytes, own_marker: str) -> bytes | None:
    try:
        obj = msgspec.json.decode(value)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not obj["id"]:
        return None
    obj["id"] = new_id(obj["id"], own_marker)
    return msgspec.json.encode(obj)
