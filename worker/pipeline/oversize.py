"""What a result holds instead of an API body too large to publish, so that it stays useful.

The body is replaced by its size and SHA-256 (`contracts.TruncatedData`), and keeps what the
reader needs to go on: a list's `meta` (the cursor of the next page, the total) and a turns
page's `pagination`, as the API sent them, and a `hint` saying how to read the body in parts.
"""

from __future__ import annotations

import hashlib
from typing import Any

from contracts import TruncatedData

PAGED = frozenset({"agent.list", "call.list", "agent.turns"})
KEPT = ("meta", "pagination")


def truncated(data: bytes) -> TruncatedData:
    """The stand-in for a JSON body too large to publish."""
    return TruncatedData(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())


def stand_in(command: str | None, body: Any, encoded: bytes, budget: int) -> TruncatedData:
    """The stand-in for the result body `body` of `command` (`encoded` as JSON) over `budget`."""
    kept: dict[str, Any] = {}
    if isinstance(body, dict):
        kept = {key: body[key] for key in KEPT if isinstance(body.get(key), dict)}
    hint = _hint(command, body, len(encoded), budget)
    if hint is not None:
        kept["hint"] = hint
    return TruncatedData(bytes=len(encoded), sha256=hashlib.sha256(encoded).hexdigest(), **kept)


def _hint(command: str | None, body: Any, size: int, budget: int) -> str | None:
    if command == "agent.history" and isinstance(body, dict):
        contents = body.get("contents")
        if isinstance(contents, list) and contents:
            fit = max(1, len(contents) * budget // size * 9 // 10)  # a tenth spare: entries vary
            return (
                f"the history has {len(contents)} entries, {size} bytes over a budget of "
                f"{budget}: read it in parts with agent.history's contents_from and "
                f"contents_count (about {fit} entries a part)"
            )
    if command in PAGED:
        return (
            f"the page is {size} bytes over a budget of {budget}: ask for fewer pages or a "
            "smaller limit (page_size for agent.turns); the kept cursor or pagination goes on "
            "after this page"
        )
    return None
