"""Ordering keys follow `docs/contracts.md`: agent name or id, phone number, else the command id."""

from __future__ import annotations

import pytest

from contracts.keys import ordering_key


@pytest.mark.parametrize(
    ("command", "key"),
    [
        ({"command": "agent.start", "id": "c", "name": "bot"}, "bot"),
        ({"command": "agent.speak", "id": "c", "name": "bot", "text": "x"}, "bot"),
        ({"command": "agent.stop", "id": "c", "agent_id": "A1"}, "A1"),
        ({"command": "agent.list", "id": "c"}, "c"),
        ({"command": "call.start", "id": "c", "name": "call-1"}, "call-1"),
        ({"command": "call.hangup", "id": "c", "agent_id": "A2"}, "A2"),
        ({"command": "call.list", "id": "c"}, "c"),
        ({"command": "number.add", "id": "c", "phone_number": "+15550001"}, "+15550001"),
        ({"command": "number.delete", "id": "c", "phone_number": "+15550001"}, "+15550001"),
        ({"command": "number.list", "id": "c"}, "c"),
        ({"command": 7, "id": "c"}, None),
        ({"command": "agent.speak", "id": "c", "name": ""}, None),
    ],
)
def test_ordering_key(command: dict[str, object], key: str | None) -> None:
    """Each command family is keyed by the field that scopes its ordering."""
    assert ordering_key(command) == key
