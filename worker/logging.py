"""structlog configuration: JSON lines in production, readable console output on a terminal.

Configured once at process start by `configure_logging`. Standard-library loggers (aiokafka,
aiohttp) are routed through the same processor chain, so every line has one format and passes
the same redaction. Two layers keep secrets out of logs: keys that name a secret are masked
whatever their value, and the literal values of the configured secrets are masked wherever they
appear in a rendered line.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

import structlog
from structlog.typing import EventDict, Processor

from worker.settings import SECRET_FIELDS, Settings

MASK = "***"
# Keys whose values are credentials wherever they appear (HTTP headers, join properties, settings).
SECRET_KEYS = frozenset(
    {
        "authorization",
        "api_key",
        "access_key",
        "secret_key",
        "key",
        "token",
        "rtc_token",
        "password",
        "customer_secret",
        "auth_token",
        "webhook_secret",
        "adc_credentials_string",
        "encryption_key",
        "encryption_salt",
    }
)


def _mask_secret_keys(value: Any) -> Any:
    """Return `value` with every secret-named key masked, recursively.

    An empty or null value stays as it is: it reveals nothing, and the line then shows that the
    secret is not set, as `convoai-worker config` does.
    """
    if isinstance(value, Mapping):
        return {
            k: MASK
            if str(k).lower() in SECRET_KEYS and v not in ("", None)
            else _mask_secret_keys(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_mask_secret_keys(v) for v in value]
    return value


def redact_secret_keys(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask values stored under secret-named keys."""
    masked: EventDict = _mask_secret_keys(event_dict)
    return masked


class SecretValueScrubber:
    """Final-stage filter that replaces known secret values in rendered lines."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Short values would mask innocent text; credentials are long.
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def scrub(self, line: str) -> str:
        """Return `line` with every configured secret replaced by the mask."""
        for secret in self._secrets:
            if secret in line:
                line = line.replace(secret, MASK)
        return line


class _ScrubbingRenderer:
    """Wraps the final renderer so its output is scrubbed before it is written."""

    def __init__(self, renderer: Processor, scrubber: SecretValueScrubber) -> None:
        self._renderer = renderer
        self._scrubber = scrubber

    def __call__(self, logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> str:
        rendered = self._renderer(logger, name, event_dict)
        return self._scrubber.scrub(str(rendered))


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
    scrubber = SecretValueScrubber(getattr(settings, name) for name in SECRET_FIELDS)
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
            _ScrubbingRenderer(renderer, scrubber),
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
