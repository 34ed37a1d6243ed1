"""Two tenants on one worker: their accounts, credentials file and an emulator that keeps them
apart (each App ID accepts only its own account's credentials)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import msgspec

from worker.emulator.config import EmulatorConfig


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
