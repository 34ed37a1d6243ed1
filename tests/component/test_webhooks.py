"""Agora's callbacks through the worker's own ops server into the agent-state topic."""

from __future__ import annotations

import aiohttp
import pytest

from contracts import decode_agent_state
from devtools.local import free_port
from tests.component.harness import ScriptedApi, running
from tests.observability.fakes import SECRET, joined, signed
from worker.kafka.memory import InMemoryBroker
from worker.kafka.ports import Headers
from worker.pipeline import publisher

STATE = "convoai.agent-state"


@pytest.fixture(autouse=True)
def fast_redelivery(monkeypatch: pytest.MonkeyPatch) -> None:
    """A state event Kafka did not take is sent again within milliseconds here."""
    monkeypatch.setattr(publisher, "RETRY_BASE_SECONDS", 0.005)
    monkeypatch.setattr(publisher, "RETRY_MAX_SECONDS", 0.02)


async def test_a_callback_is_answered_200_only_once_its_state_event_is_on_the_topic(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """While Kafka does not acknowledge the state event the callback gets 503; Agora's
    redelivery, once Kafka takes it, gets 200 and the topic holds the event exactly once."""
    refusing = {"on": True}

    def unavailable(
        topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> Exception:
        del key, value, headers
        return ConnectionError("broker unreachable") if topic == STATE and refusing["on"] else None  # type: ignore[return-value]

    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks/agora"
    async with (
        running(broker, api, webhook_secret=SECRET, http_port=port) as worker,
        aiohttp.ClientSession() as session,
    ):
        broker.send_fault = unavailable
        body = joined()
        async with session.post(url, data=body, headers=signed(body)) as answer:
            assert (answer.status, (await answer.json())["verdict"]) == (503, "publish_timeout")
        assert broker.records(STATE) == []
        refusing["on"] = False
        async with session.post(url, data=body, headers=signed(body)) as answer:
            assert answer.status == 200
            [record] = broker.records(STATE)  # on the topic when the 200 is sent
        assert worker.worker.directory.resolve("component-app", "bot") == "A42"
    assert record.key == b"A42"
    event = decode_agent_state(record.value or b"")
    assert (event.agent_id, event.status, event.source, event.name) == (
        "A42",
        "RUNNING",
        "webhook",
        "bot",
    )
