"""Big reads that stay useful: several pages in one result, up to a bound, with the cursor that
goes on; a history read in parts."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.emulator.harness import CUSTOMER_ID, CUSTOMER_SECRET, running_emulator
from tests.execution.conftest import Env
from tests.execution.test_executor import start
from worker.emulator.config import EmulatorConfig


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    """The emulator with agents RUNNING as soon as they start: a list (RUNNING by default)
    shows every agent the test started, in order."""
    config = EmulatorConfig(customer_id=CUSTOMER_ID, customer_secret=CUSTOMER_SECRET, start_delay=0)
    async with contextlib.AsyncExitStack() as stack:
        yield Env(await stack.enter_async_context(running_emulator(config)), stack)


def listing(**fields: Any) -> dict[str, Any]:
    return {"command": "agent.list", "id": "list", **fields}


async def started(env: Env, count: int) -> list[str]:
    ids = []
    for n in range(count):
        execution = await env.run(start(f"bot-{n}"))
        assert execution.result.outcome == "succeeded"
        ids.append(execution.result.agent_id or "")
    return ids


def agent_ids(data: dict[str, Any]) -> list[str]:
    return [item["agent_id"] for item in data["data"]["list"]]


async def test_pages_are_read_into_one_result_and_the_cursor_goes_on(env: Env) -> None:
    """Three pages of two: six agents in one result whose cursor leads to the seventh; the
    next command reads the rest, nothing seen twice."""
    ids = await started(env, 7)
    first = (await env.run(listing(limit=2, pages=3))).result
    assert first.outcome == "succeeded"
    assert first.data is not None
    assert agent_ids(first.data) == ids[:6]
    assert first.data["data"]["count"] == 6
    assert first.data["meta"]["cursor"] == ids[6]
    rest = (await env.run(listing(limit=2, pages=3, cursor=first.data["meta"]["cursor"]))).result
    assert rest.data is not None
    assert agent_ids(rest.data) == ids[6:]
    assert rest.data["meta"]["cursor"] == ""
    assert len(env.emulator.requests("agent.list")) == 4


async def test_the_pages_read_are_bounded_by_the_setting_and_the_budget(env: Env) -> None:
    """CONVOAI_MAX_LIST_PAGES caps `pages`; a page that would take the result over the budget
    is left for the cursor."""
    ids = await started(env, 20)
    await env.configure(max_list_pages=2)
    capped = (await env.run(listing(limit=1, pages=50))).result
    assert capped.data is not None
    assert agent_ids(capped.data) == ids[:2]
    await env.configure(max_result_bytes=1024)
    budgeted = (await env.run(listing(limit=5, pages=50))).result
    assert budgeted.data is not None
    read = agent_ids(budgeted.data)
    assert read == ids[: len(read)]
    assert 0 < len(read) < 20
    assert budgeted.data["meta"]["cursor"] == ids[len(read)]


async def test_turns_are_read_page_after_page(env: Env) -> None:
    """25 turns in pages of 10: one result with all of them and the last page's pagination."""
    (agent_id,) = await started(env, 1)
    for n in range(25):
        speak = {"command": "agent.speak", "id": f"s{n}", "agent_id": agent_id, "text": "hi"}
        assert (await env.run(speak)).result.outcome == "succeeded"
    turns = {"command": "agent.turns", "id": "t", "agent_id": agent_id, "page_size": 10}
    result = (await env.run({**turns, "pages": 5})).result
    assert result.data is not None
    assert len(result.data["turns"]) == 25
    assert result.data["pagination"]["is_last_page"] is True
    assert len(env.emulator.requests("agent.turns")) == 3


async def test_a_history_is_read_in_parts(env: Env) -> None:
    """`contents_from` and `contents_count` return those entries and how many there are."""
    (agent_id,) = await started(env, 1)
    for n in range(5):
        speak = {"command": "agent.speak", "id": f"s{n}", "agent_id": agent_id, "text": f"t{n}"}
        await env.run(speak)
    history = {"command": "agent.history", "id": "h", "agent_id": agent_id}
    whole = (await env.run(history)).result.data
    part = (await env.run({**history, "contents_from": 1, "contents_count": 2})).result.data
    assert whole is not None
    assert part is not None
    assert part["contents"] == whole["contents"][1:3]
    assert part["contents_total"] == len(whole["contents"])
