"""The emulator's request log: what tests read back through `GET /_emulator/requests`.

A ring buffer: recording costs one tuple append, old entries fall off, so a long benchmark does
not grow memory. Bodies are stored as received and parsed only when the log is read.
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

import msgspec


class LoggedRequest(NamedTuple):
    """One request as the emulator received it, and the status it answered. It is logged once
    answered, so a late answer (latency, a `delay` rule) comes after requests that arrived
    later: `timestamp` is when it arrived."""

    timestamp: float
    operation: str
    method: str
    path: str
    query: str
    body: bytes
    status: int  # 0 when the connection was dropped without an answer

    def to_json(self) -> dict[str, Any]:
        """The entry with the body parsed as JSON when it is JSON (`None` when empty)."""
        body: Any = None
        if self.body:
            try:
                body = msgspec.json.decode(self.body)
            except msgspec.DecodeError:
                body = self.body.decode(errors="replace")
        return {
            "timestamp": self.timestamp,
            "operation": self.operation,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "body": body,
            "status": self.status,
        }


class RequestLog:
    """The last `capacity` requests, plus a count of every request ever recorded."""

    def __init__(self, capacity: int) -> None:
        self._entries: deque[LoggedRequest] = deque(maxlen=capacity)
        self.total = 0

    def record(self, entry: LoggedRequest) -> None:
        """Append one request, evicting the oldest when full."""
        self._entries.append(entry)
        self.total += 1

    def clear(self) -> None:
        """Forget everything (the total included)."""
        self._entries.clear()
        self.total = 0

    def entries(self, operation: str | None = None) -> list[LoggedRequest]:
        """The retained requests, oldest first, optionally of one operation only."""
        if operation is None:
            return list(self._entries)
        return [entry for entry in self._entries if entry.operation == operation]
