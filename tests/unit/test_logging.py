"""Log lines are JSON with context, and secrets never reach them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from tests.logs import logging_into_buffer
from worker.logging import RepeatLimiter
from worker.settings import Settings

SECRET = "customer-secret-0123456789"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Logging into a buffer, restored afterwards."""
    settings = Settings(customer_id="c", customer_secret=SECRET, log_format="json")
    with logging_into_buffer(settings) as buffer:
        yield buffer


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


def test_the_startup_line_tells_set_secrets_from_unset_ones(stream: io.StringIO) -> None:
    """Settings as `run` logs them: a set secret is masked, an unset one shows empty, the same
    view `convoai-worker config` prints."""
    settings = Settings(customer_id="c", customer_secret=SECRET, log_format="json")
    structlog.get_logger("t").info("worker_configuring", settings=settings.redacted())
    logged = lines(stream)[0]["settings"]
    assert isinstance(logged, dict)
    assert (logged["customer_secret"], logged["webhook_secret"]) == ("***", "")
    assert logged == json.loads(json.dumps(settings.redacted()))


def test_configured_secret_values_are_scrubbed_everywhere(stream: io.StringIO) -> None:
    """A secret value inside free text, also from stdlib loggers, is replaced."""
    structlog.get_logger("t").warning("oops", detail=f"auth failed for {SECRET}")
    logging.getLogger("aiokafka.conn").error("connect with %s", SECRET)
    assert SECRET not in stream.getvalue()
    assert len(lines(stream)) == 2


def test_a_library_repeating_itself_is_held_to_one_line_per_window(stream: io.StringIO) -> None:
    """With the broker down aiokafka logs each failed attempt in a tight loop; one line shows."""
    for attempt in range(500):
        logging.getLogger("aiokafka.conn").warning("Unable connect to node %s: %s", 1, attempt)
        logging.getLogger("other.library").warning("line %s", attempt)
    logged = lines(stream)
    assert [line["event"] for line in logged if line["logger"] == "aiokafka.conn"] == [
        "Unable connect to node 1: 0"
    ]
    assert sum(line["logger"] == "other.library" for line in logged) == 500


def test_the_line_after_a_quiet_window_says_how_many_were_held_back() -> None:
    now = [0.0]
    limiter = RepeatLimiter(window=10.0, clock=lambda: now[0])

    def record(n: int) -> logging.LogRecord:
        return logging.LogRecord("aiokafka.conn", logging.WARNING, "", 0, "failed %s", (n,), None)

    passed = []
    for n in range(100):
        now[0] = n * 0.5  # every half second for 50 s
        if limiter.filter(entry := record(n)):
            passed.append(entry.getMessage())
    assert passed == [
        "failed 0",
        "failed 20 (19 more like it held back in the last 10 s)",
        "failed 40 (19 more like it held back in the last 10 s)",
        "failed 60 (19 more like it held back in the last 10 s)",
        "failed 80 (19 more like it held back in the last 10 s)",
    ]
