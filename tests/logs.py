"""The worker's logging, configured into a buffer for a test and restored afterwards."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from types import ModuleType

import structlog
from structlog.typing import EventDict

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


@contextlib.contextmanager
def captured_logs(*modules: ModuleType) -> Iterator[list[EventDict]]:
    """The log lines of `modules` (their module-level `log`), every level, as event dicts.

    `structlog.testing.capture_logs` alone misses lines of a logger cached by an earlier test
    (the worker caches loggers on first use, with the level and processors of that moment), so
    each module gets a fresh, uncached logger for the block.
    """
    capture = structlog.testing.LogCapture()
    saved = {module: vars(module)["log"] for module in modules}
    structlog.configure(
        processors=[capture],
        wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET),
        cache_logger_on_first_use=False,
    )
    try:
        for module in modules:
            vars(module)["log"] = structlog.get_logger(module.__name__)
        yield capture.entries
    finally:
        for module, logger in saved.items():
            vars(module)["log"] = logger
        structlog.reset_defaults()
