"""Results made of several pages, and parts of a history: big reads that stay publishable.

`agent.list`, `call.list` and `agent.turns` read one page per command unless the command asks
for up to `pages`: the worker then follows the cursor (`meta.cursor`) or the page index
(`pagination`) and returns one body shaped like a page, holding the items of every page read
and the last page's `meta` or `pagination`, which says where to go on. It stops at the last
page, at `CONVOAI_MAX_LIST_PAGES`, or before a page that would take the result over
`CONVOAI_MAX_RESULT_BYTES` (that page is the one the kept cursor leads to). `agent.history`
with `contents_from` / `contents_count` returns only those entries of `contents`, and
`contents_total`: how a history over the budget is read in parts.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

import msgspec

from contracts import AgentHistory, AgentTurns, Command
from worker.api.client import ApiResponse
from worker.api.requests import ApiRequest
from worker.execution.caller import Budget, Caller, Refusal

BUDGET_SHARE = 0.9  # of the result budget for the body: the result's other fields need room


class Pages:
    """Completes a read command's reply: more pages, or a part of the history."""

    def __init__(self, caller: Caller, *, max_pages: int, max_bytes: int) -> None:
        self._caller = caller
        self._max_pages = max_pages
        self._max_bytes = int(max_bytes * BUDGET_SHARE)

    async def complete(
        self, command: Command, request: ApiRequest, reply: ApiResponse | Refusal, budget: Budget
    ) -> ApiResponse | Refusal:
        """`reply` with the further pages the command asked for, or its part of the history."""
        if not isinstance(reply, ApiResponse) or not isinstance(reply.data, dict):
            return reply
        if isinstance(command, AgentHistory):
            return reply._replace(data=_history_part(command, reply.data))
        wanted = min(getattr(command, "pages", None) or 1, self._max_pages)
        if wanted == 1:
            return reply
        body = msgspec.json.decode(msgspec.json.encode(reply.data))  # a copy to extend
        size = len(msgspec.json.encode(body))
        turns = isinstance(command, AgentTurns)
        for _ in range(wanted - 1):
            following = _next_query(body, request.query, turns=turns)
            if following is None:
                break
            page = await self._caller.perform(
                request._replace(query=following), budget, idempotent=True
            )
            if not isinstance(page, ApiResponse) or not isinstance(page.data, dict):
                break
            page_size = len(msgspec.json.encode(page.data))
            if size + page_size > self._max_bytes:
                break  # the kept cursor leads to this page
            size += page_size
            _append(body, page.data, turns=turns)
            reply = page._replace(data=body)
        return reply


def _next_query(body: dict[str, Any], query: str, *, turns: bool) -> str | None:
    """The query of the page after `body`; None when it was the last."""
    if turns:
        pagination = body.get("pagination") or {}
        index = pagination.get("page_index")
        total = pagination.get("total_pages")
        if pagination.get("is_last_page", True) or not isinstance(index, int):
            return None
        if isinstance(total, int) and index >= total:
            return None
        return _with(query, "page_index", str(index + 1), first=True)
    cursor = (body.get("meta") or {}).get("cursor")
    return (
        _with(query, "cursor", cursor, first=False) if isinstance(cursor, str) and cursor else None
    )


def _with(query: str, key: str, value: str, *, first: bool) -> str:
    """`query` with `key` set to `value`, in its place (the SDK's order: the page index leads,
    the cursor ends)."""
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != key]
    return urlencode([(key, value), *pairs] if first else [*pairs, (key, value)])


def _append(body: dict[str, Any], page: dict[str, Any], *, turns: bool) -> None:
    """Add `page`'s items to `body`, whose paging fields become `page`'s."""
    if turns:
        body.setdefault("turns", []).extend(page.get("turns") or [])
        body["pagination"] = page.get("pagination")
        return
    items = (page.get("data") or {}).get("list") or []
    data = body.setdefault("data", {})
    data.setdefault("list", []).extend(items)
    data["count"] = len(data["list"])
    body["meta"] = page.get("meta")


def _history_part(command: AgentHistory, body: dict[str, Any]) -> dict[str, Any]:
    """The entries of `contents` the command asked for, and how many there are."""
    if command.contents_from is None and command.contents_count is None:
        return body
    contents = body.get("contents") or []
    start = command.contents_from or 0
    end = len(contents) if command.contents_count is None else start + command.contents_count
    return {**body, "contents": contents[start:end], "contents_total": len(contents)}
