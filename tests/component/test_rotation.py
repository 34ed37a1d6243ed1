"""A running worker follows a rotated credentials file: no restart, no command lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from tests.api.secrets import publish
from tests.component.harness import (
    APP_ID,
    ScriptedApi,
    produce,
    result_ids,
    results,
    running,
    until,
)
from worker.kafka.memory import InMemoryBroker

COMMANDS = "convoai.commands"


def credentials(token: str) -> dict[str, str]:
    return {"credentials.json": f'{{"{APP_ID}": {{"auth_token": "{token}"}}}}'}


def get(n: int) -> dict[str, str]:
    return {"command": "agent.get", "id": f"get-{n}", "agent_id": f"a{n}"}


def published(broker: InMemoryBroker, command_id: str) -> Callable[[], bool]:
    return lambda: command_id in result_ids(broker)


async def test_a_rotated_secret_signs_the_next_commands(
    broker: InMemoryBroker, api: ScriptedApi, tmp_path: Path
) -> None:
    """The Secret is updated while the worker runs: later commands are signed with the new
    token, and every command succeeds."""
    publish(tmp_path, credentials("old"))
    options = {
        "api_credentials_file": str(tmp_path / "credentials.json"),
        "api_credentials_poll_seconds": 0.05,
    }
    async with running(broker, api, **options):
        produce(broker, COMMANDS, [get(0)])
        await until(published(broker, "get-0"), "the first result")
        publish(tmp_path, credentials("new"))
        sent = 1
        for n in range(1, 200):  # a command every 20 ms until one carries the new token
            if "agora token=new" in api.signed:
                break
            produce(broker, COMMANDS, [get(n)])
            sent += 1
            await until(published(broker, f"get-{n}"), f"get-{n}'s result")
            await asyncio.sleep(0.02)
    assert api.signed[0] == "agora token=old"
    assert api.signed[-1] == "agora token=new"
    assert [r.outcome for r in results(broker)] == ["succeeded"] * sent
