"""argparse types that refuse bad values in one line naming what is allowed.

argparse reports an `ArgumentTypeError` as `argument --port: <message>`, so each message says
what the flag accepts and what it got.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

MAX_PORT = 65535
_AGO = re.compile(r"(?P<amount>\d+(?:\.\d+)?)(?P<unit>[smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

T = TypeVar("T", int, float)


def port(text: str) -> int:
    """A TCP port, 0 (any free one) to 65535."""
    value = _number(text, int, "a port from 0 to 65535")
    if not 0 <= value <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer of at least 1."""
    value = _number(text, int, "an integer >= 1")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """An integer of at least 0 (a count where 0 means "none" or "no limit")."""
    value = _number(text, int, "an integer >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def non_negative(text: str) -> float:
    """A number of at least 0 (seconds, milliseconds)."""
    value = _number(text, float, "a number >= 0")
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A probability from 0 to 1."""
    value = _number(text, float, "a fraction from 0 to 1")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 to 1, got {text!r}")
    return value


def moment(text: str) -> datetime:
    """A point in time: RFC 3339 (`2026-03-01T12:00:00Z`, a date alone is its midnight UTC) or
    a time ago (`90s`, `30m`, `2h`, `7d`)."""
    ago = _AGO.fullmatch(text.strip())
    if ago is not None:
        return datetime.now(UTC) - timedelta(**{_UNITS[ago["unit"]]: float(ago["amount"])})
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an RFC 3339 time (2026-03-01T12:00:00Z) or a time ago (30m, 2h, 7d), "
            f"got {text!r}"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _number(text: str, kind: Callable[[str], T], expected: str) -> T:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
