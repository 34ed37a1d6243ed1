"""Fixtures of the security tests: those of the whole-worker tests (fresh topics and an
emulator per test)."""

from __future__ import annotations

from tests.pipeline.conftest import emulator, topics

__all__ = ["emulator", "topics"]
