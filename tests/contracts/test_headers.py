"""DLQ and CloudEvents headers, and the topic names, as consumers and tools expect them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import yaml
from jsonschema import Draft202012Validator

from contracts import (
    AGENT_STATE_TOPIC,
    COMMAND_RESULT_EVENT_TYPE,
    COMMANDS_TOPIC,
    DLQ_TOPIC,
    RESULTS_TOPIC,
    CommandDecodeError,
    cloudevent_headers,
    decode_command,
    dlq_headers,
)
from contracts.headers import STAGE_DECODE, STAGE_EXECUTE
from tests.contracts.support import ROOT, SCHEMA_DIR
from worker.settings import Settings


def decode_error() -> CommandDecodeError:
    try:
        decode_command(b'{"command":"agent.speak","id":"c","agent_id":"A","text":1}')
    except CommandDecodeError as error:
        return error
    raise AssertionError("the command was expected to be invalid")


def as_text(headers: list[tuple[str, bytes]]) -> dict[str, str]:
    return {name: value.decode() for name, value in headers}


def header_schema(name: str) -> Draft202012Validator:
    document = yaml.safe_load((SCHEMA_DIR / "asyncapi.yaml").read_text())
    return Draft202012Validator(document["components"]["schemas"][name])


class TestDeadLetterHeaders:
    def test_connect_names_and_text_values(self) -> None:
        """Kafka Connect's header names, numbers written as decimal text, in Connect's order."""
        headers = dlq_headers(
            topic=COMMANDS_TOPIC, partition=3, offset=1207, stage=STAGE_DECODE, error=decode_error()
        )
        text = as_text(headers)
        assert [name for name, _ in headers] == [
            "__connect.errors.topic",
            "__connect.errors.partition",
            "__connect.errors.offset",
            "__connect.errors.connector.name",
            "__connect.errors.task.id",
            "__connect.errors.stage",
            "__connect.errors.exception.class.name",
            "__connect.errors.exception.message",
            "__connect.errors.exception.stacktrace",
        ]
        assert text["__connect.errors.partition"] == "3"
        assert text["__connect.errors.offset"] == "1207"
        assert text["__connect.errors.stage"] == "VALUE_CONVERTER"
        assert (
            text["__connect.errors.exception.class.name"] == "contracts.errors.CommandDecodeError"
        )
        assert text["__connect.errors.exception.message"] == "$.text: expected str, got int"
        assert "decode_command" in text["__connect.errors.exception.stacktrace"]

    def test_optional_context_and_builtin_exceptions(self) -> None:
        """`class.name` is written when given; builtin exception names are unqualified."""
        text = as_text(
            dlq_headers(
                topic=COMMANDS_TOPIC,
                partition=0,
                offset=0,
                stage=STAGE_EXECUTE,
                error=TimeoutError("retries exhausted after 5 attempts"),
                class_name="worker.pipeline",
                task_id=2,
            )
        )
        assert text["__connect.errors.class.name"] == "worker.pipeline"
        assert text["__connect.errors.exception.class.name"] == "TimeoutError"
        assert text["__connect.errors.task.id"] == "2"

    def test_unencodable_messages_do_not_break_reporting(self) -> None:
        """A lone surrogate quoted in a message is escaped, not an encoding crash."""
        text = as_text(
            dlq_headers(
                topic="t", partition=0, offset=0, stage=STAGE_DECODE, error=ValueError("\ud800")
            )
        )
        assert text["__connect.errors.exception.message"] == "\\ud800"

    def test_the_asyncapi_document_describes_them(self) -> None:
        """What the helper writes satisfies the published header schema."""
        headers = dlq_headers(
            topic="t", partition=1, offset=2, stage=STAGE_DECODE, error=decode_error()
        )
        header_schema("DeadLetterHeaders").validate(as_text(headers))


class TestCloudEventHeaders:
    def test_binary_mode_attributes(self) -> None:
        """ce_* attributes, time in UTC, and the JSON content type."""
        headers = cloudevent_headers(
            id="c-17",
            source="/convoai-worker/pod-1",
            type=COMMAND_RESULT_EVENT_TYPE,
            time=datetime(2026, 3, 1, 14, 0, 0, 250000, tzinfo=timezone(timedelta(hours=2))),
            subject="A42",
        )
        assert headers == [
            ("ce_specversion", b"1.0"),
            ("ce_id", b"c-17"),
            ("ce_source", b"/convoai-worker/pod-1"),
            ("ce_type", b"io.convoai.command.result.v1"),
            ("ce_time", b"2026-03-01T12:00:00.250000Z"),
            ("ce_subject", b"A42"),
            ("content-type", b"application/json"),
        ]
        header_schema("CommandResultHeaders").validate(as_text(headers))

    def test_subject_is_optional(self) -> None:
        """Without a subject there is no ce_subject header."""
        headers = cloudevent_headers(
            id="1", source="s", type="t", time=datetime(2026, 1, 1, tzinfo=UTC)
        )
        assert "ce_subject" not in as_text(headers)

    @pytest.mark.parametrize(
        ("field", "value"),
        [("id", ""), ("source", ""), ("type", ""), ("time", datetime(2026, 1, 1))],  # noqa: DTZ001
    )
    def test_required_attributes_are_checked(self, field: str, value: object) -> None:
        """Empty required attributes and naive times would violate the CloudEvents spec."""
        arguments: dict[str, object] = {
            "id": "1",
            "source": "s",
            "type": "t",
            "time": datetime(2026, 1, 1, tzinfo=UTC),
            field: value,
        }
        with pytest.raises(ValueError, match=field):
            cloudevent_headers(**arguments)  # type: ignore[arg-type]


def test_topic_names_are_the_documented_ones() -> None:
    """The contract's and the worker's default topics are the names the README promises."""
    documented = (
        "convoai.commands",
        "convoai.results",
        "convoai.agent-state",
        "convoai.commands.dlq",
    )
    assert documented == (COMMANDS_TOPIC, RESULTS_TOPIC, AGENT_STATE_TOPIC, DLQ_TOPIC)
    settings = Settings()
    defaults = (
        settings.topic_commands,
        settings.topic_results,
        settings.topic_state,
        settings.topic_dlq,
    )
    assert defaults == documented
    readme = (ROOT / "README.md").read_text()
    assert (
        "`convoai.commands` / `convoai.results` / `convoai.agent-state` / `convoai.commands.dlq`"
        in readme
    )
