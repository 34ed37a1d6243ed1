"""Records whose outputs cannot be published as they are never stop the worker."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
import pytest

from contracts.headers import (
    DLQ_EXCEPTION_MESSAGE,
    DLQ_NULL_VALUE,
    DLQ_ORIGINAL_BYTES,
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_SHA256,
    DLQ_REASON,
    DLQ_TRUNCATED,
)
from devtools.workload import speaks
from tests.component.harness import (
    ScriptedApi,
    gets,
    produce,
    result_ids,
    results,
    running,
    until,
)
from tests.contracts.support import event_validator
from worker.api.errors import ApiStatusError
from worker.kafka.memory import InMemoryBroker
from worker.kafka.ports import Committed, Headers, RecordRejectedError
from worker.pipeline import publisher

COMMANDS = "convoai.commands"
RESULTS = "convoai.results"
DLQ = "convoai.commands.dlq"
STATE = "convoai.agent-state"
GROUP = "component"
MAX_RECORD = 200_000


@pytest.fixture(autouse=True)
def fast_redelivery(monkeypatch: pytest.MonkeyPatch) -> None:
    """Transient delivery failures are retried within milliseconds here."""
    monkeypatch.setattr(publisher, "RETRY_BASE_SECONDS", 0.005)
    monkeypatch.setattr(publisher, "RETRY_MAX_SECONDS", 0.02)


def letters(broker: InMemoryBroker) -> list[dict[str, bytes]]:
    """The headers of every dead letter, in the order of the original records."""
    heads = [dict(record.headers) for record in broker.records(DLQ)]
    return sorted(heads, key=lambda h: int(h[DLQ_ORIGINAL_OFFSET]))


def letter_values(broker: InMemoryBroker) -> list[bytes | None]:
    """The value of every dead letter, in the order of the original records."""
    records = broker.records(DLQ)
    return [
        r.value for r in sorted(records, key=lambda r: int(dict(r.headers)[DLQ_ORIGINAL_OFFSET]))
    ]


async def test_transient_failures_are_retried_and_the_worker_is_not_ready_meanwhile(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """A result that cannot be delivered is sent again until it is; not ready until then."""
    failures = {"left": 40}

    def flaky(topic: str, key: bytes | None, value: bytes | None, headers: Headers) -> Exception:
        del key, value, headers
        if topic == RESULTS and failures["left"]:
            failures["left"] -= 1
            return ConnectionError("broker unreachable")
        return None  # type: ignore[return-value]

    async with running(broker, api) as worker:
        broker.send_fault = flaky
        produce(broker, COMMANDS, speaks("t", 1, agents=1), partition=0)
        await until(
            lambda: "outputs not delivered" in worker.worker.health.readiness().reason,
            "readiness says outputs are failing",
        )
        assert broker.committed(GROUP, COMMANDS, 0) is None  # nothing committed meanwhile
        await until(lambda: "t-0" in result_ids(broker), "the result once Kafka is back")
        await until(lambda: worker.worker.health.readiness().ok, "ready again")
        await until(lambda: broker.committed(GROUP, COMMANDS, 0) == Committed(1), "committed")
    assert result_ids(broker) == {"t-0": 1}
    assert api.calls("t-0") == 1


async def test_a_response_over_the_budget_is_published_truncated(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """A 2 MiB API response becomes `{"truncated": true, ...}`; the outcome stays succeeded."""
    history = {"contents": [{"role": "user", "content": "x" * 1000}] * 2100}
    body = msgspec.json.encode(history)
    api.body_for["big-agent"] = history
    produce(broker, COMMANDS, [{"command": "agent.history", "id": "h-1", "agent_id": "big-agent"}])
    async with running(broker, api):
        await until(lambda: "h-1" in result_ids(broker), "the history result")
    (result,) = results(broker)
    assert result.outcome == "succeeded"
    event_validator("TruncatedData").validate(result.data)  # the shape consumers are given
    hint = result.data.pop("hint")
    assert result.data == {
        "truncated": True,
        "bytes": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    assert "has 2100 entries" in hint


async def test_an_error_body_over_the_budget_is_published_truncated(
    broker: InMemoryBroker,
) -> None:
    """A gateway's huge HTML error page in `error.details` becomes a `TruncatedData` too."""
    page = "<html>" + "x" * 400_000 + "</html>"

    class FailingApi(ScriptedApi):
        async def send(self, request: Any, *, time_left: float | None = None) -> Any:
            del time_left
            self.requests.append(request)
            raise ApiStatusError(request.operation, 400, body=page, request_id="gw-1")

    produce(broker, COMMANDS, [{"command": "agent.get", "id": "g-1", "agent_id": "A"}])
    async with running(broker, FailingApi()):
        await until(lambda: "g-1" in result_ids(broker), "the failed result")
    (result,) = results(broker)
    assert result.error is not None
    assert (result.outcome, result.error.request_id, result.request_id) == (
        "failed",
        "gw-1",
        "gw-1",
    )
    encoded = msgspec.json.encode(page)
    assert result.error.details == {
        "truncated": True,
        "bytes": len(encoded),
        "sha256": hashlib.sha256(encoded).hexdigest(),
    }


async def test_poison_records_are_dead_lettered_and_the_rest_runs(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """Empty id, null value, no key and no value, non-UTF-8, oversize: each dead-lettered."""
    oversize = b"{" + b"x" * (MAX_RECORD + 50_000)
    produce(broker, COMMANDS, speaks("before", 1, agents=1), partition=0)
    empty_id = {"command": "agent.speak", "id": "", "agent_id": "x", "text": "hi"}
    broker.produce(COMMANDS, msgspec.json.encode(empty_id), key=b"x", partition=0)
    broker.produce(COMMANDS, None, key=b"key-only", partition=0)
    broker.produce(COMMANDS, None, partition=0)
    broker.produce(COMMANDS, b"\xff\xfe not utf-8", key=b"k", partition=0)
    broker.produce(COMMANDS, oversize, key=b"big", partition=0)
    produce(broker, COMMANDS, speaks("after", 1, agents=1), partition=0)
    async with running(broker, api, max_record_bytes=MAX_RECORD, max_result_bytes=65_536):
        await until(lambda: "after-0" in result_ids(broker), "the command after the poison")
        await until(lambda: len(broker.records(DLQ)) == 5, "five dead letters")
        await until(lambda: broker.committed(GROUP, COMMANDS, 0) == Committed(7), "committed")
    assert result_ids(broker) == {"before-0": 1, "after-0": 1}  # no result for an empty id
    heads = letters(broker)
    assert [h[DLQ_REASON] for h in heads] == [b"invalid_command"] + [b"decode_error"] * 4
    assert [DLQ_NULL_VALUE in h for h in heads] == [False, True, True, False, False]
    values = letter_values(broker)
    big = values[-1]
    assert big is not None
    assert oversize.startswith(big)
    assert len(big) < MAX_RECORD
    assert heads[-1][DLQ_ORIGINAL_BYTES] == str(len(oversize)).encode()
    assert heads[-1][DLQ_ORIGINAL_SHA256] == hashlib.sha256(oversize).hexdigest().encode()
    assert heads[-1][DLQ_TRUNCATED] == b"true"
    assert values[1] is None  # the key-only record keeps its null value
    assert values[2] == b""  # a record needs a key or a value


async def test_a_refused_result_is_cut_short_and_then_dead_lettered(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """The broker refusing a result: a shorter one; refusing that too: the command's DLQ copy."""
    refusals = {"left": 1}

    def refuse(topic: str, key: bytes | None, value: bytes | None, headers: Headers) -> Exception:
        del key, value, headers
        if topic == RESULTS and refusals["left"]:
            refusals["left"] -= 1
            return RecordRejectedError("MESSAGE_TOO_LARGE")
        return None  # type: ignore[return-value]

    broker.send_fault = refuse
    long_text = "c" * 5000
    command = {
        "command": "agent.speak",
        "id": "r-1",
        "agent_id": "a",
        "text": "r",
        "correlation_id": long_text,
    }
    produce(broker, COMMANDS, [command], partition=0)
    async with running(broker, api):
        await until(lambda: len(results(broker)) == 1, "the shortened result")
        (result,) = results(broker)
        assert result.command_id == "r-1"
        assert result.correlation_id == long_text[:1024]
        assert result.outcome == "succeeded"
        refusals["left"] = 2
        produce(broker, COMMANDS, [{**command, "id": "r-2", "text": "r2"}], partition=0)
        await until(lambda: len(broker.records(DLQ)) == 1, "dead letter of the command")
        await until(lambda: broker.committed(GROUP, COMMANDS, 0) == Committed(2), "committed")
    assert letters(broker)[0][DLQ_REASON] == b"output_rejected"
    assert len(results(broker)) == 1


async def test_a_refused_state_event_does_not_hold_back_the_result(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """A state event the broker refuses is logged; the command's result is still published."""

    def refuse(topic: str, key: bytes | None, value: bytes | None, headers: Headers) -> Exception:
        del key, value, headers
        return RecordRejectedError("refused") if topic == STATE else None  # type: ignore[return-value]

    broker.send_fault = refuse
    start = {
        "command": "agent.start",
        "id": "st-1",
        "name": "n",
        "properties": {
            "channel": "c",
            "token": "t",
            "agent_rtc_uid": "1",
            "remote_rtc_uids": ["2"],
        },
    }
    produce(broker, COMMANDS, [start], partition=0)
    async with running(broker, api):
        await until(lambda: "st-1" in result_ids(broker), "the start's result")
    assert broker.records(STATE) == []
    assert results(broker)[0].outcome == "succeeded"


async def test_invalid_commands_with_an_id_are_rejected_once_and_counted_under_known_types(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """A field error and an unknown command each get a `rejected` result and a dead letter; a
    field error counts under its command, anything else as `invalid` (producers' typos make no
    series); a second record with the same id gets neither result nor dead letter."""
    bad_field = {"command": "agent.speak", "id": "bad-1", "agent_id": "a", "text": 7}
    unknown = {"command": "agent.dance", "id": "bad-2", "agent_id": "a"}
    produce(broker, COMMANDS, [bad_field, unknown, bad_field], partition=0)
    async with running(broker, api) as worker:
        await until(lambda: broker.committed(GROUP, COMMANDS, 0) == Committed(3), "committed")
        registry = worker.worker.metrics.registry
    by_id = {result.command_id: result for result in results(broker)}
    assert len(results(broker)) == 2
    field, typo = by_id["bad-1"], by_id["bad-2"]
    assert field.error is not None
    assert typo.error is not None
    assert (field.outcome, field.command, field.attempts, field.error.code) == (
        "rejected",
        "agent.speak",
        0,
        "invalid_command",
    )
    assert field.error.message == "$.text: expected str, got int"
    assert (typo.outcome, typo.attempts, typo.error.code) == ("rejected", 0, "invalid_command")
    assert "agent.dance" in typo.error.message
    [record] = [r for r in broker.records(COMMANDS) if r.offset == 0]
    assert field.received_at.timestamp() == record.timestamp / 1000
    assert [h[DLQ_REASON] for h in letters(broker)] == [b"invalid_command"] * 2

    def sample(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    completed = "convoai_commands_completed_total"
    assert sample(completed, command="agent.speak", outcome="rejected") == 1
    assert sample(completed, command="invalid", outcome="rejected") == 1
    assert sample(completed, command="agent.dance", outcome="rejected") == 0
    assert sample("convoai_commands_deduplicated_total", command="agent.speak") == 1
    assert sample("convoai_commands_received_total", command="invalid") == 3
    assert sample("convoai_dlq_records_total", reason="invalid_command") == 2
    assert api.requests == []


async def test_a_dead_letter_the_broker_refuses_is_sent_again_without_its_value(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """The copy fit the worker's limit but not the broker's: the second letter keeps the headers
    that locate the original, with its size and SHA-256, and drops the value."""
    poison = b"{not json at all"

    def refuse(topic: str, key: bytes | None, value: bytes | None, headers: Headers) -> Exception:
        del key, headers
        refused = topic == DLQ and bool(value)
        return RecordRejectedError("MESSAGE_TOO_LARGE") if refused else None  # type: ignore[return-value]

    broker.send_fault = refuse
    broker.produce(COMMANDS, poison, key=b"k", partition=0)
    async with running(broker, api) as worker:
        await until(lambda: broker.committed(GROUP, COMMANDS, 0) == Committed(1), "committed")
        registry = worker.worker.metrics.registry
    [head] = letters(broker)
    assert letter_values(broker) == [b""]
    assert (head[DLQ_REASON], head[DLQ_ORIGINAL_OFFSET]) == (b"decode_error", b"0")
    assert head[DLQ_ORIGINAL_BYTES] == str(len(poison)).encode()
    assert head[DLQ_ORIGINAL_SHA256] == hashlib.sha256(poison).hexdigest().encode()
    assert registry.get_sample_value("convoai_dlq_records_total", {"reason": "decode_error"}) == 1


async def test_a_command_out_of_retries_is_dead_lettered_and_a_refused_one_is_not(
    broker: InMemoryBroker, api: ScriptedApi
) -> None:
    """`retries_exhausted` sends the command to the DLQ to be replayed later; a command the API
    refused (a 4xx) would fail the same way again, so it only gets its `failed` result."""
    api.failures["g-0"] = [ApiStatusError("agent.get", 503)] * 2
    api.failures["g-1"] = [ApiStatusError("agent.get", 400)]
    produce(broker, COMMANDS, gets("g", 2), partition=0)
    async with running(broker, api, api_max_attempts=2) as worker:
        await until(lambda: broker.committed(GROUP, COMMANDS, 0) == Committed(2), "committed")
        registry = worker.worker.metrics.registry
    codes = {r.command_id: (r.outcome, r.error.code if r.error else None) for r in results(broker)}
    assert codes == {"g-0": ("failed", "retries_exhausted"), "g-1": ("failed", "invalid_request")}
    [head] = letters(broker)
    assert (head[DLQ_REASON], head[DLQ_ORIGINAL_OFFSET]) == (b"retries_exhausted", b"0")
    assert b"agent.get: HTTP 503" in head[DLQ_EXCEPTION_MESSAGE]
    assert (
        registry.get_sample_value("convoai_dlq_records_total", {"reason": "retries_exhausted"}) == 1
    )
