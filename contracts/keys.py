"""The record key a command should be produced with (the ordering key of `docs/contracts.md`).

Commands with the same key run in order; different keys run concurrently. An agent is keyed by
its name when the command carries one, else by its id — so address one agent consistently (by
name, or by id) across its commands. Phone-number commands are keyed by the number; list
commands have no ordering needs and are keyed by their own id, which spreads them out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "agent.start": ("name",),
    "call.start": ("name",),
    "call.get": ("agent_id",),
    "call.hangup": ("agent_id",),
    "number.add": ("phone_number",),
    "number.get": ("phone_number",),
    "number.update": ("phone_number",),
    "number.delete": ("phone_number",),
}
_AGENT_KEY_FIELDS = ("name", "agent_id")


def ordering_key(command: Mapping[str, Any]) -> str | None:
    """The key for a command object (as decoded JSON), or None when it has no usable field."""
    tag = command.get("command")
    if not isinstance(tag, str):
        return None
    fields = _KEY_FIELDS.get(tag)
    if fields is None:
        fields = _AGENT_KEY_FIELDS if tag.startswith("agent.") and tag != "agent.list" else ("id",)
    for field in fields:
        value = command.get(field)
        if isinstance(value, str) and value:
            return value
    return None
