"""Two tenants on one worker: their accounts, credentials file and an emulator that keeps them
apart (each App ID accepts only its own account's credentials)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from devtools.workload import agent_properties
from tests.pipeline.harness import make_settings, produce, wait_for_results
from worker.emulator.config import EmulatorConfig
from worker.settings import Settings


class Tenant(NamedTuple):
    """One App ID's account and NCS secret."""

    app_id: str
    customer_id: str
    customer_secret: str
    webhook_secret: str


A = Tenant("app-a", "a-customer", "a-customer-secret-1", "a-ncs-secret-1")
B = Tenant("app-b", "b-customer", "b-customer-secret-2", "b-ncs-secret-2")
TENANTS = (A, B)

EMULATOR = EmulatorConfig(
    tenants={t.app_id: f"{t.customer_id}:{t.customer_secret}" for t in TENANTS},
    max_agents_per_app=1000,
    start_delay=0.0,  # agents run at once: what each tenant sees of them is the point here
)


def credentials_file(directory: Path) -> Path:
    """The worker's `CONVOAI_API_CREDENTIALS_FILE` for both tenants."""
    path = directory / "credentials.json"
    path.write_bytes(
        msgspec.json.encode(
            {
                t.app_id: {
                    "customer_id": t.customer_id,
                    "customer_secret": t.customer_secret,
                    "webhook_secret": t.webhook_secret,
                }
                for t in TENANTS
            }
        )
    )
    return path


def two_tenant_settings(
    bootstrap: str, topics: Mapping[str, str], api_url: str, directory: Path, **overrides: Any
) -> Settings:
    """A worker serving both tenants from a credentials file in `directory` (app-a is its
    default App ID)."""
    return make_settings(
        bootstrap,
        topics,
        api_url,
        app_id=A.app_id,
        api_credentials_file=str(credentials_file(directory)),
        **overrides,
    )


async def start_agent(bootstrap: str, topics: Mapping[str, str], app_id: str, name: str) -> str:
    """Start an agent called `name` for `app_id` through the running worker; its agent id."""
    command_id = f"{app_id}-start-{name}"
    command = {
        "command": "agent.start",
        "id": command_id,
        "app_id": app_id,
        "name": name,
        "properties": agent_properties(f"room-{name}"),
    }
    await produce(bootstrap, topics["commands"], [command])
    results = await wait_for_results(bootstrap, topics["results"], {command_id})
    (started,) = [result for result in results if result.command_id == command_id]
    assert started.agent_id is not None, started
    return started.agent_id
