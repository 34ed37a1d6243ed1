"""Settings for a subcommand, checked as the worker checks them at start, with the warnings an
operator should see before it runs.

`run`, `config` and every other subcommand load their settings here, so `config` refuses exactly
what `run` would refuse: the variables, the Kafka security files and credentials every Kafka
client checks, and (for commands that call the API) the per-tenant credentials file.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping
from typing import Any, cast

import structlog

from worker.api.headers import ExtraHeaders
from worker.api.tenants import Tenants
from worker.kafka.connection import client_options, exposure_warnings
from worker.settings import Settings, credentials_warning, load_settings, unknown_variables
from worker.tracing import require_extra


def load(
    *, api: bool, flags: Mapping[str, str] | None = None, **overrides: object
) -> tuple[Settings, list[str]]:
    """The settings (flags override variables) and warnings: unknown `CONVOAI_*` variables,
    Kafka settings that expose credentials, and, for commands that call the API (`api`),
    missing credentials for the real API."""
    settings = load_settings(flags=flags, **cast(dict[str, Any], overrides))
    client_options(settings)
    require_extra(settings)
    if api:
        Tenants.from_settings(settings)
        ExtraHeaders.from_settings(settings)
    warnings = unknown_variables() + exposure_warnings(settings)
    if api and (missing := credentials_warning(settings)) is not None:
        warnings.append(missing)
    return settings, warnings


def print_warnings(warnings: Iterable[str]) -> None:
    """One `convoai-worker: warning: ...` line each, on stderr."""
    for warning in warnings:
        sys.stderr.write(f"convoai-worker: warning: {warning}\n")


def settings_for(
    *, api: bool, flags: Mapping[str, str] | None = None, **overrides: object
) -> Settings:
    """`load`, printing the warnings to stderr: for the commands that do not log.

    What the worker's own code still logs (a slow client stop, say) goes to stderr, warnings
    and errors only, so stdout carries nothing but the command's output.
    """
    settings, warnings = load(api=api, flags=flags, **overrides)
    print_warnings(warnings)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    return settings
