"""structlog configuration: JSON lines in production, readable console output on a terminal.

Configured once at process start by `configure_logging`. Standard-library loggers (aiokafka,
aiohttp) are routed through the same processor chain, so every line has one format and passes
the same redaction (`worker.redaction`). Two layers keep secrets out of logs: fields whose name
says they hold a secret are masked whatever their value, and the values of the configured
secrets (the settings' credentials, and those of the credentials file once it is read:
`mask_values`) are masked wherever they appear in a rendered line, escaped or not, as are
passwords in URLs.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

import structlog
from structlog.typing import EventDict, Processor

from worker.api.tenants import authorization
from worker.redaction import ValueMasker, mask_secret_fields
from worker.settings import SECRET_FIELDS, Settings

_masker = ValueMasker()  # the process's: the renderer of every handler reads it


def mask_values(secrets: Iterable[str]) -> None:
    """Mask these values too in every line from now on (secrets read after logging was set up,
    such as the credentials file's)."""
    _masker.add(secrets)


def redact_secret_keys(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask values stored under secret-named keys."""
    masked: EventDict = mask_secret_fields(event_dict)
    return masked


class _MaskingRenderer:
    """Wraps the final renderer so its output is masked before it is written."""

    def __init__(self, renderer: Processor) -> None:
        self._renderer = renderer

    def __call__(self, logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> str:
        return _masker.mask(str(self._renderer(logger, name, event_dict)))


class RepeatLimiter(logging.Filter):
    """Lets one line per message per `window` seconds through from libraries that repeat
    themselves: with the broker down, aiokafka logs its failed connection and metadata attempts
    in a tight loop (megabytes a minute). The next line after a quiet window says how many were
    held back, so the count is not lost."""

    MAX_MESSAGES = 1000  # distinct messages remembered; beyond that the memory starts afresh

    def __init__(
        self,
        prefixes: tuple[str, ...] = ("aiokafka",),
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._prefixes = prefixes
        self._window = window
        self._clock = clock
        self._seen: dict[tuple[str, int, object], list[float]] = {}  # -> [first, held back]

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a repeat within the window of its first line."""
        if not record.name.startswith(self._prefixes):
            return True
        key = (record.name, record.levelno, record.msg)  # the template: its arguments vary
        now = self._clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self._window:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.msg = (
                f"{record.getMessage()} ({seen[1]:.0f} more like it held back in the last "
                f"{now - seen[0]:.0f} s)"
            )
            record.args = None
        if len(self._seen) >= self.MAX_MESSAGES:
            self._seen.clear()
        self._seen[key] = [now, 0]
        return True


def configure_logging(settings: Settings, stream: Any = None) -> None:
    """Set up structlog and the stdlib root logger for this process."""
    stream = stream or sys.stderr
    use_console = settings.log_format == "console" or (
        settings.log_format == "auto" and stream.isatty()
    )
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty())
        if use_console
        else structlog.processors.JSONRenderer()
    )
    mask_values(_configured_secrets(settings))
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secret_keys,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[settings.log_level]
        ),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _MaskingRenderer(renderer),
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RepeatLimiter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # aiokafka logs every rebalance step and retriable broker error at INFO/WARNING; keep the
    # useful part without drowning the command lines.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _configured_secrets(settings: Settings) -> list[str]:
    """The settings' credentials, and the `Authorization` value made of them."""
    header = authorization(settings) or ""
    return [*(getattr(settings, name) for name in SECRET_FIELDS), header.partition(" ")[2]]
