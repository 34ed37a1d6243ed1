"""Fixtures of the security tests: those of the whole-worker tests (fresh topics, or names of
topics to create, and an emulator per test)."""

from __future__ import annotations

from tests.pipeline.conftest import emulator, names, topics

__all__ = ["emulator", "names", "topics"]
