"""`convoai-worker config --check`: connect to everything the worker needs, one line each.

What a restart loop would otherwise reveal one failure at a time, checked in one go before a
rollout: the Kafka cluster and the four topics (a missing one is fine when the worker may create
it; the agent-state topic must be compacted), the ConvoAI API with each tenant's credentials (a
harmless read: the first page of agents, one item), and the webhook secrets (the one of a
single App ID, or each App ID's) when Agora is expected to call back. Every check prints
`NAME: ok (...)` or `NAME: failed: REASON`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import NamedTuple

from contracts import AgentList
from worker.api.client import ConvoAIClient
from worker.api.errors import ApiError
from worker.api.requests import path_for, request_for
from worker.api.tenants import Tenants
from worker.kafka.cluster import ClusterView, describe
from worker.kafka.connection import diagnose
from worker.kafka.startup import UNREACHABLE
from worker.kafka.topics import required_topics
from worker.settings import Settings

CHECK_TIMEOUT_SECONDS = 10.0  # per API request: a healthy API answers a list in milliseconds


class Check(NamedTuple):
    """One verdict."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        """`NAME: ok (DETAIL)` or `NAME: failed: DETAIL`."""
        return (
            f"{self.name}: ok ({self.detail})" if self.ok else f"{self.name}: failed: {self.detail}"
        )


async def checks(settings: Settings, *, webhooks: bool) -> AsyncIterator[Check]:
    """Every check in turn; `webhooks`: Agora is expected to call `/webhooks/agora`."""
    for check in await kafka_checks(settings):
        yield check
    async for check in api_checks(settings):
        yield check
    for check in webhook_checks(settings, expected=webhooks):
        yield check


async def kafka_checks(settings: Settings) -> list[Check]:
    """The cluster, then each topic; the topics are not checked when the cluster is not there."""
    topics = list(required_topics(settings))
    name = f"kafka {settings.kafka_bootstrap}"
    try:
        view = await describe(settings, topics)
    except UNREACHABLE:
        reason = (await diagnose(settings)).message
        return [
            Check(name, ok=False, detail=reason),
            *(
                Check(f"topic {t}", ok=False, detail="not checked: Kafka unreachable")
                for t in topics
            ),
        ]
    brokers = f"{view.brokers} broker{'s' * (view.brokers != 1)}"
    return [Check(name, ok=True, detail=brokers), *_topic_checks(settings, view)]


def _topic_checks(settings: Settings, view: ClusterView) -> list[Check]:
    found = []
    for topic in view.topics:
        name = f"topic {topic.name}"
        if not topic.partitions:
            if settings.create_topics:
                found.append(Check(name, ok=True, detail="missing; `run` creates it"))
            else:
                detail = "missing, and CONVOAI_CREATE_TOPICS=false: create it before `run`"
                found.append(Check(name, ok=False, detail=detail))
            continue
        detail = f"{topic.partitions} partition{'s' * (topic.partitions != 1)}"
        if topic.name == settings.topic_state and "compact" not in topic.cleanup_policy:
            detail = (
                f"cleanup.policy is {topic.cleanup_policy or 'unknown'}, not compact: agent "
                "states would be deleted with age instead of kept per agent"
            )
            found.append(Check(name, ok=False, detail=detail))
            continue
        found.append(Check(name, ok=True, detail=detail))
    return found


async def api_checks(settings: Settings) -> AsyncIterator[Check]:
    """One read per App ID the settings name, signed as the worker would sign it."""
    tenants = Tenants.from_settings(settings)
    app_ids = tenants.named() or ([settings.app_id] if settings.app_id else [])
    if not app_ids:
        detail = "no App ID to check the credentials with: set CONVOAI_APP_ID"
        yield Check("api", ok=False, detail=detail)
        return
    async with ConvoAIClient(settings, tenants) as client:
        for app_id in app_ids:
            path = path_for(AgentList, app_id=app_id)
            request = request_for(AgentList, path, {"limit": 1}, app_id=app_id)
            started = time.perf_counter()
            try:
                response = await client.send(request, time_left=CHECK_TIMEOUT_SECONDS)
            except ApiError as error:
                yield Check(f"api {app_id}", ok=False, detail=str(error))
                continue
            took = (time.perf_counter() - started) * 1000
            detail = f"agent.list answered {response.status} in {took:.0f} ms"
            yield Check(f"api {app_id}", ok=True, detail=detail)


def webhook_checks(settings: Settings, *, expected: bool) -> list[Check]:
    """The NCS secrets: required when Agora calls back, or every callback is refused. One
    secret for a single App ID (`/webhooks/agora`); with a credentials file, one per App ID
    (`/webhooks/agora/{app_id}`, the `webhook_secret` of its entry)."""
    tenants = Tenants.from_settings(settings)
    if not settings.api_credentials_file:
        refused = "CONVOAI_WEBHOOK_SECRET is not set, so /webhooks/agora refuses every callback"
        found = {"webhooks": ("CONVOAI_WEBHOOK_SECRET is set" if settings.webhook_secret else "")}
    else:
        refused = (
            "no webhook_secret in CONVOAI_API_CREDENTIALS_FILE, so its endpoint refuses every "
            "callback"
        )
        found = {
            f"webhooks {app_id}": (
                f"its webhook_secret is set (/webhooks/agora/{app_id})"
                if tenants.webhook_secret(app_id)
                else ""
            )
            for app_id in tenants.named()
        }
    checks = []
    for name, detail in found.items():
        if detail:
            checks.append(Check(name, ok=True, detail=detail))
        elif expected:
            checks.append(Check(name, ok=False, detail=refused))
        else:
            checks.append(Check(name, ok=True, detail=f"off: {refused}"))
    return checks
