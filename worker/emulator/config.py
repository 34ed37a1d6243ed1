"""How an emulator instance behaves: credentials, strictness, timings, limits, webhooks and
faults."""

from __future__ import annotations

from typing import Annotated

import msgspec

from worker.emulator.faults import FaultSettings
from worker.emulator.rules import Rules
from worker.emulator.state import DEFAULT_START_DELAY, DEFAULT_STOP_DELAY

NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Positive = Annotated[int, msgspec.Meta(ge=1)]


class EmulatorConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Emulator settings; `worker.emulator.auth` says how the credentials are checked and
    `worker.emulator.rules` how strict the service is."""

    customer_id: str = ""
    customer_secret: str = ""
    auth_token: str = ""  # also accept `agora token=<auth_token>` when set
    # App ID → "customer_id:customer_secret": that App ID's paths accept only these credentials,
    # as separate Agora accounts would (a tenant's credentials do not reach another's App IDs)
    tenants: dict[str, str] = msgspec.field(default_factory=dict)
    # App ID → App Certificate: that App ID's paths also accept tokens signed with it
    app_certificates: dict[str, str] = msgspec.field(default_factory=dict)
    rules: Rules = msgspec.field(default_factory=Rules)
    start_delay: NonNegative = DEFAULT_START_DELAY  # seconds an agent stays STARTING
    stop_delay: NonNegative = DEFAULT_STOP_DELAY  # seconds an agent stays STOPPING after leave
    max_agents_per_app: Positive = 20  # concurrent agents per App ID before 422
    request_log_size: Positive = 10_000
    retain_stopped: Positive = 10_000  # stopped agents kept for get/turns before being forgotten
    webhook_url: str = ""
    webhook_secret: str = ""
    faults: FaultSettings = msgspec.field(default_factory=FaultSettings)
