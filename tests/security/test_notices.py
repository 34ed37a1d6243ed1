"""Webhooks per App ID, on the real broker: a forged notice, a notice signed by one tenant about
another's agent, or one sent to the wrong endpoint changes nothing; the genuine one applies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from contracts import decode_agent_state
from tests.component.harness import until
from tests.emulator.harness import running_emulator
from tests.observability.fakes import notice, post_notice
from tests.pipeline.harness import (
    in_process_worker,
    read_topic,
    scrape,
    total,
)
from tests.security.tenants import EMULATOR, A, B, Tenant, start_agent, two_tenant_settings

pytestmark = pytest.mark.kafka


async def test_forged_and_mislabelled_notices_change_nothing(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    """app-b's agent is running. A "left" notice about it signed with app-a's secret is refused
    at app-a's endpoint (403, counted) and at app-b's (401); the unqualified path is no
    endpoint on a worker of two App IDs; the reconciler keeps reading the agent under app-b.
    A notice id app-a used does not shadow app-b's genuine notice with the same id."""
    async with running_emulator(EMULATOR) as emulator:
        settings = two_tenant_settings(
            kafka_bootstrap, topics, emulator.api_url, tmp_path, reconcile_interval_seconds=0.2
        )

        async def send(endpoint: str, body: bytes, signer: Tenant) -> tuple[int, Any]:
            """POST `body` to /webhooks/agora`endpoint`, signed with `signer`'s NCS secret."""
            path = f"/webhooks/agora{endpoint}"
            return await post_notice(
                settings.http_port, body, path=path, secret=signer.webhook_secret
            )

        async with in_process_worker(settings) as worker:
            agent_id = await start_agent(kafka_bootstrap, topics, B.app_id, "bob")
            left = notice(102, {"agent_id": agent_id, "name": "bob"}, noticeId="n-left")
            mislabelled = await send(f"/{A.app_id}", left, A)
            forged = await send(f"/{B.app_id}", left, A)
            unqualified = await send("", left, B)
            stranger = await send("/app-c", left, B)
            own = notice(101, {"agent_id": "A-OWN", "name": "eve"}, noticeId="n-shared")
            assert (await send(f"/{A.app_id}", own, A))[0] == 200
            await until(
                lambda: bool(reconciled_reads(emulator.requests("agent.get"), agent_id)),
                "a reconcile pass over the agent",
                within=30,
            )
            reads = reconciled_reads(emulator.requests("agent.get"), agent_id)
            held = worker.directory.state(B.app_id, agent_id)
            genuine = notice(102, {"agent_id": agent_id, "name": "bob"}, noticeId="n-shared")
            accepted = await send(f"/{B.app_id}", genuine, B)
            samples = await scrape(settings.http_port)
    assert mislabelled[0] == 403
    assert mislabelled[1]["verdict"] == "app_mismatch"
    assert (forged[0], forged[1]["verdict"]) == (401, "bad_signature")
    assert (unqualified[0], unqualified[1]["verdict"]) == (404, "unknown_endpoint")
    assert (stranger[0], stranger[1]["verdict"]) == (404, "unknown_endpoint")
    assert total(samples, "convoai_webhook_events_total", verdict="app_mismatch") == 1
    assert {path.split("/projects/")[1].split("/")[0] for path in reads} == {B.app_id}
    assert held is not None
    assert held.status == "RUNNING"
    assert (accepted[0], accepted[1]["verdict"]) == (200, "accepted")
    states = [
        decode_agent_state(r.value) for r in await read_topic(kafka_bootstrap, topics["state"])
    ]
    about = [(s.app_id, s.status, s.source) for s in states if s.agent_id == agent_id]
    assert about[-1] == (B.app_id, "STOPPED", "webhook")
    assert all(app_id == B.app_id for app_id, _, _ in about)
    assert [s.status for s in states if s.agent_id == agent_id].count("STOPPED") == 1


def reconciled_reads(requests: list[dict[str, Any]], agent_id: str) -> list[str]:
    """Paths of the agent.get requests the reconciler sent for `agent_id`."""
    return [r["path"] for r in requests if r["path"].endswith(f"/agents/{agent_id}")]
