"""Run a coroutine on uvloop when it is installed (it roughly halves per-request loop overhead)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on uvloop when available, else on the default loop."""
    try:
        import uvloop  # noqa: PLC0415 - optional: absent on platforms without wheels
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
