"""The chaos suite's stage: a group that does not recover from a fault in time is a violation."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from chaos.infra import EmulatorProcess, OwnBroker
from chaos.judge import Fault
from chaos.leaks import SecretScan
from chaos.stage import Run, Stage
from devtools.workload import lifecycles
from tests.pipeline.group import ResultsTail, TopicTail
from tests.unit.chaos_records import record


class Tail:
    """A results tail that has `records` and receives nothing more."""

    def __init__(self, records: list[Any]) -> None:
        self.records = records
        self.per_command: Counter[str] = Counter()

    async def poll(self, wait_ms: int = 0) -> None:
        """Nothing new."""


def stage_with(appended_at: list[float], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stage:
    """A stage whose results partitions 0, 1, … got their last result at `appended_at` (s)."""
    monkeypatch.setattr("tests.pipeline.harness.free_port", lambda: 9)  # opens no socket
    broker = cast(OwnBroker, SimpleNamespace(bootstrap="127.0.0.1:9"))
    emulator = cast(EmulatorProcess, SimpleNamespace(api_url="http://127.0.0.1:9/api"))
    run = Run(broker, emulator, tmp_path, 13, {}, SecretScan({}))
    sent = lifecycles("t", 1, 4)
    stage = Stage(run, "9: test", sent, latency_ms=0, settings={}, within=1, allowed=frozenset())
    records = [record(p, 0, seconds=at) for p, at in enumerate(appended_at)]
    stage.results = cast(ResultsTail, Tail(records))
    stage.dlq = cast(TopicTail, Tail([]))
    stage.faults.append(Fault("1. SIGKILL", 2.0, killed=True))
    return stage


async def test_a_recovery_that_times_out_is_a_violation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage = stage_with([3.0, 1.0], tmp_path, monkeypatch)  # partition 1: nothing since t = 2
    await stage.recovered(within=0.1)
    assert stage.figures.violations == ["not recovered 0.1 s after 1. SIGKILL"]
    stage = stage_with([3.0, 2.5], tmp_path, monkeypatch)
    await stage.recovered(within=0.1)
    assert stage.figures.violations == []
