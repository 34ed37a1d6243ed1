"""Several tenants in one worker: each App ID's requests carry its own account's credentials,
and a command for an App ID that is not served is rejected without reaching the API."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import msgspec
import pytest

from tests.emulator.harness import running_emulator
from tests.pipeline.harness import in_process_worker, make_settings, produce, wait_for_results
from worker.emulator.config import EmulatorConfig

pytestmark = pytest.mark.kafka

ACCOUNTS = {"app-one": "one-id:one-secret", "app-two": "two-id:two-secret"}


async def test_each_app_id_is_signed_by_its_account_and_others_are_refused(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    """The emulator accepts each App ID only with its account's credentials (401 otherwise)."""
    credentials = tmp_path / "credentials.json"
    credentials.write_bytes(
        msgspec.json.encode(
            {
                app: {"customer_id": pair.split(":")[0], "customer_secret": pair.split(":")[1]}
                for app, pair in ACCOUNTS.items()
            }
        )
    )
    commands = [
        {"command": "agent.list", "id": f"{app}-{i}", "app_id": app}
        for app in (*ACCOUNTS, "app-three")
        for i in range(3)
    ]
    await produce(kafka_bootstrap, topics["commands"], commands)
    config = EmulatorConfig(tenants=ACCOUNTS, customer_id="other", customer_secret="other")
    async with running_emulator(config) as emulator:
        settings = make_settings(
            kafka_bootstrap,
            topics,
            emulator.api_url,
            api_credentials_file=str(credentials),
            customer_id="other",  # a default account the tenants must never be signed with
            customer_secret="other",
        )
        async with in_process_worker(settings):
            results = await wait_for_results(
                kafka_bootstrap, topics["results"], {c["id"] for c in commands}
            )
        requests = emulator.requests("agent.list")
    outcomes = {r.command_id: (r.outcome, r.error.code if r.error else None) for r in results}
    for app in ACCOUNTS:
        assert all(outcomes[f"{app}-{i}"] == ("succeeded", None) for i in range(3)), outcomes
    assert all(outcomes[f"app-three-{i}"] == ("rejected", "app_id_not_allowed") for i in range(3))
    served = Counter(r["path"].split("/projects/")[1].split("/")[0] for r in requests)
    assert served == {"app-one": 3, "app-two": 3}  # nothing for app-three reached the API
    assert {r["status"] for r in requests} == {200}
