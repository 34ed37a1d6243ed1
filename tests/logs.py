"""The worker's logging, configured into a buffer for a test and restored afterwards."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator

import structlog

from worker.logging import configure_logging
from worker.settings import Settings


@contextlib.contextmanager
def logging_into_buffer(settings: Settings) -> Iterator[io.StringIO]:
    """`configure_logging(settings)` writing into the buffer yielded; the root logger and
    structlog are as before once the block ends."""
    buffer = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(settings, buffer)
    try:
        yield buffer
    finally:
        root.handlers[:], root.level = handlers, level
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
