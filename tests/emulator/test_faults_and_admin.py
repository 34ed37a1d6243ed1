"""Fault injection, the request log and the other `/_emulator/` admin endpoints."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from tests.emulator.harness import APP_ID, RunningEmulator, running_emulator, start_body
from worker.emulator.config import EmulatorConfig
from worker.emulator.faults import FaultRule, Faults, FaultSettings

PROJECT = f"/v2/projects/{APP_ID}"


async def put_faults(emulator: RunningEmulator, settings: dict[str, Any]) -> dict[str, Any]:
    async with emulator.session.put(f"{emulator.origin}/_emulator/faults", json=settings) as reply:
        assert reply.status == 200, await reply.text()
        body: dict[str, Any] = await reply.json()
        return body


async def admin(emulator: RunningEmulator, method: str, path: str, **kwargs: Any) -> Any:
    async with emulator.session.request(
        method, f"{emulator.origin}/_emulator/{path}", **kwargs
    ) as reply:
        return reply.status, await reply.json()


async def test_counted_error_rule_hits_only_its_operation_and_count(
    emulator: RunningEmulator,
) -> None:
    """A rule with `operation` and `count` answers its status that many times, then stops."""
    await put_faults(emulator, {"rules": [{"operation": "agent.start", "status": 503, "count": 2}]})
    assert (await emulator.call("GET", "/v2/phone-numbers"))[0] == 200
    first = await emulator.call("POST", f"{PROJECT}/join", json=start_body())
    second = await emulator.call("POST", f"{PROJECT}/join", json=start_body())
    assert first == second == (503, {"detail": "injected fault", "reason": "ServiceUnavailable"})
    assert (await emulator.call("POST", f"{PROJECT}/join", json=start_body()))[0] == 200
    _, faults = await admin(emulator, "GET", "faults")
    assert faults["rules"][0]["remaining"] == 0


async def test_429_burst_carries_retry_after_and_the_operation_is_not_performed(
    emulator: RunningEmulator,
) -> None:
    """An injected error answers before the operation runs, with `Retry-After` when set."""
    await put_faults(emulator, {"rules": [{"status": 429, "count": 1, "retry_after": 1.5}]})
    async with emulator.session.post(
        f"{emulator.api_url}{PROJECT}/join",
        json=start_body(),
        headers={"Authorization": "Basic Y3VzdG9tZXI6c2VjcmV0"},
    ) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "1.5"
        assert response.headers["X-Request-ID"].startswith("emu-")
    assert emulator.state.agent_count() == 0


@pytest.mark.parametrize(("execute", "agents"), [(False, 0), (True, 1)])
async def test_drop_closes_the_connection_with_or_without_performing(
    emulator: RunningEmulator, execute: bool, agents: int
) -> None:
    """`drop` reads the request and closes the connection; `execute` performs it first."""
    rule = {"action": "drop", "operation": "agent.start", "execute": execute, "count": 1}
    await put_faults(emulator, {"rules": [rule]})
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await emulator.call("POST", f"{PROJECT}/join", json=start_body())
    assert emulator.state.agent_count() == agents
    assert emulator.log.entries("agent.start")[-1].status == 0


async def test_delay_answers_late(emulator: RunningEmulator) -> None:
    """`delay` performs the operation and answers after `delay_ms`."""
    await put_faults(emulator, {"rules": [{"action": "delay", "delay_ms": 150, "count": 1}]})
    started = time.monotonic()
    assert (await emulator.call("GET", "/v2/phone-numbers"))[0] == 200
    assert time.monotonic() - started >= 0.14  # a lower bound: sleeps never end early


async def test_a_slow_response_outlasts_a_short_client_timeout(emulator: RunningEmulator) -> None:
    """A client whose timeout is shorter than the delay gives up (the timeout test case)."""
    await put_faults(emulator, {"rules": [{"action": "delay", "delay_ms": 300, "count": 1}]})
    with pytest.raises(asyncio.TimeoutError):
        await emulator.call("GET", "/v2/phone-numbers", timeout=aiohttp.ClientTimeout(total=0.05))


def test_rates_and_latency_are_sampled() -> None:
    """A `rate` rule hits about that fraction of requests; jitter stays within its bound."""
    faults = Faults(
        FaultSettings(latency_ms=10, latency_jitter_ms=5, rules=[FaultRule(status=500, rate=0.25)])
    )
    hits = sum(faults.pick("agent.get") is not None for _ in range(4000))
    assert 800 < hits < 1200
    assert all(0.010 <= faults.latency() < 0.015 for _ in range(100))


async def test_invalid_fault_settings_are_refused(emulator: RunningEmulator) -> None:
    """The admin endpoint validates rules (e.g. a status outside 400-599) and keeps the old ones."""
    status, reply = await admin(emulator, "PUT", "faults", json={"rules": [{"status": 200}]})
    assert status == 400
    assert "rules[0].status" in reply["error"]
    assert emulator.faults.settings.rules == []


async def test_a_misspelt_operation_is_refused_with_the_closest_name(
    emulator: RunningEmulator,
) -> None:
    """A rule for an operation that does not exist would never fire: refused, not ignored."""
    rules = {"rules": [{"operation": "agent.strat", "status": 503}]}
    status, reply = await admin(emulator, "PUT", "faults", json=rules)
    assert status == 400
    assert "unknown operation 'agent.strat'; did you mean 'agent.start'?" in reply["error"]
    assert emulator.faults.settings.rules == []


async def test_request_log_records_and_filters(emulator: RunningEmulator) -> None:
    """The log keeps method, path, query, parsed body, status and operation, oldest first."""
    await emulator.call("POST", f"{PROJECT}/join", json=start_body())
    await emulator.call("GET", f"{PROJECT}/agents", params={"state": "0,1"})
    status, log = await admin(emulator, "GET", "requests")
    assert status == 200
    assert log["total"] == 2
    join, listing = log["requests"]
    assert (join["method"], join["path"], join["body"], join["status"]) == (
        "POST",
        f"/api/conversational-ai-agent{PROJECT}/join",
        start_body(),
        200,
    )
    assert (listing["operation"], listing["query"]) == ("agent.list", "state=0,1")
    assert listing["timestamp"] >= join["timestamp"]
    _, only = await admin(emulator, "GET", "requests", params={"operation": "agent.list"})
    assert [entry["operation"] for entry in only["requests"]] == ["agent.list"]
    await admin(emulator, "DELETE", "requests")
    assert (await admin(emulator, "GET", "requests"))[1] == {"total": 0, "requests": []}


async def test_a_request_answered_late_keeps_the_time_it_arrived(emulator: RunningEmulator) -> None:
    """The log takes a request once answered but stamps it with its arrival, so a late answer
    is logged after a request that came later and stamped before it."""
    slow = {"action": "delay", "operation": "agent.start", "delay_ms": 300, "count": 1}
    await put_faults(emulator, {"rules": [slow]})
    started = asyncio.create_task(emulator.call("POST", f"{PROJECT}/join", json=start_body()))
    await asyncio.sleep(0.1)
    await emulator.call("GET", "/v2/phone-numbers")
    await started
    listing, join = emulator.log.entries()
    assert (listing.operation, join.operation) == ("number.list", "agent.start")
    assert join.timestamp < listing.timestamp - 0.05


async def test_request_log_is_a_bounded_ring_buffer() -> None:
    """Past its capacity the log drops the oldest entries but keeps counting."""
    async with running_emulator(EmulatorConfig(request_log_size=3)) as emulator:
        for _ in range(5):
            await emulator.call("GET", "/v2/phone-numbers", params={"n": "x"})
        _, log = await admin(emulator, "GET", "requests")
        assert log["total"] == 5
        assert len(log["requests"]) == 3


async def test_reset_forgets_everything(emulator: RunningEmulator) -> None:
    """Reset clears agents, numbers, faults and the log."""
    await emulator.call("POST", f"{PROJECT}/join", json=start_body())
    await put_faults(emulator, {"latency_ms": 1})
    assert await admin(emulator, "POST", "reset") == (200, {})
    assert emulator.state.agent_count() == 0
    assert emulator.faults.settings == FaultSettings()
    assert emulator.log.total == 0


async def test_an_agent_can_be_made_to_leave_on_its_own(emulator: RunningEmulator) -> None:
    """The leave control ends a live agent with the given status and message."""
    _, created = await emulator.call("POST", f"{PROJECT}/join", json=start_body())
    path = f"apps/{APP_ID}/agents/{created['agent_id']}/leave"
    body = {"status": "FAILED", "message": "RTC connection error"}
    assert await admin(emulator, "POST", path, json=body) == (200, {})
    _, agent = await emulator.call("GET", f"{PROJECT}/agents/{created['agent_id']}")
    assert (agent["status"], agent["message"]) == ("FAILED", "RTC connection error")
    status, reply = await admin(emulator, "POST", path, json=body)
    assert (status, reply["reason"]) == (404, "TaskNotFound")
    status, _ = await admin(emulator, "POST", path, data=b"[]")
    assert status == 400
