"""Log lines are JSON with context, and secrets never reach them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from worker.logging import configure_logging
from worker.settings import Settings

SECRET = "customer-secret-0123456789"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Configure logging into a buffer and restore the root logger afterwards."""
    buffer = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(Settings(customer_secret=SECRET, log_format="json"), buffer)
    yield buffer
    root.handlers[:], root.level = handlers, level
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_bound_context(stream: io.StringIO) -> None:
    """Context bound per command appears on every line until cleared."""
    structlog.contextvars.bind_contextvars(command_id="c-1", partition=3)
    structlog.get_logger("t").info("command_processed", outcome="succeeded")
    (line,) = lines(stream)
    assert line["event"] == "command_processed"
    assert line["command_id"] == "c-1"
    assert line["partition"] == 3
    assert line["level"] == "info"


def test_secret_keys_are_masked_recursively(stream: io.StringIO) -> None:
    """API keys inside join properties and Authorization headers are masked by key name."""
    structlog.get_logger("t").info(
        "request",
        headers={"Authorization": "Basic abc"},
        properties={"llm": {"api_key": "sk-live"}, "tts": {"params": {"key": "tts-k"}}},
        servers=[{"token": "t-1"}],
    )
    text = stream.getvalue()
    for leaked in ("Basic abc", "sk-live", "tts-k", "t-1"):
        assert leaked not in text
    assert lines(stream)[0]["properties"] == {
        "llm": {"api_key": "***"},
        "tts": {"params": {"key": "***"}},
    }


def test_configured_secret_values_are_scrubbed_everywhere(stream: io.StringIO) -> None:
    """A secret value inside free text, also from stdlib loggers, is replaced."""
    structlog.get_logger("t").warning("oops", detail=f"auth failed for {SECRET}")
    logging.getLogger("aiokafka.conn").error("connect with %s", SECRET)
    assert SECRET not in stream.getvalue()
    assert len(lines(stream)) == 2
