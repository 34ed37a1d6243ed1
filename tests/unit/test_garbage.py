"""The worker process collects garbage rarely: `run` tunes the collector before it serves."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from worker.cli import build_parser
from worker.commands import run as run_command
from worker.garbage import YOUNG_THRESHOLD


@pytest.fixture
def collector() -> Iterator[None]:
    """Whatever a test does to the collector is undone after it."""
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
    gc.unfreeze()


def test_run_raises_the_youngest_threshold_and_freezes_start_up_objects(
    collector: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = gc.get_threshold()[1:]
    gc.unfreeze()
    served: list[tuple[int, ...]] = []

    def serve(main: Any) -> int:
        main.close()  # the worker is not started: only what `run` set up before matters
        served.append(gc.get_threshold())
        return 0

    monkeypatch.setattr(run_command, "run_async", serve)
    argv = ["run", "--bootstrap", "127.0.0.1:1"]
    assert run_command.run(build_parser(argv).parse_args(argv)) == 0
    assert served == [(YOUNG_THRESHOLD, *older)]
    assert gc.get_freeze_count() > 0
