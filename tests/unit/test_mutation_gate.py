"""`make mutants` scores what mutmut recorded and fails on every file below the threshold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools.mutation import Mutant, below, name_pattern, read, tally, without_mutants

KILLED, SURVIVED, RUNNER_ERROR, NO_TESTS, SKIPPED, UNTESTED = 1, 0, 255, 33, 34, None


def recorded(mutants_dir: Path, source: str, *codes: int | None) -> None:
    """mutmut's record of `source`: one mutant per exit code, as its `.meta` file holds it."""
    module = source.removesuffix(".py").replace("/", ".")
    meta = mutants_dir / f"{source}.meta"
    meta.parent.mkdir(parents=True, exist_ok=True)
    codes_by_name = {f"{module}.x_f__mutmut_{n}": code for n, code in enumerate(codes, start=1)}
    meta.write_text(json.dumps({"exit_code_by_key": codes_by_name, "durations_by_key": {}}))


def scores_below(mutants_dir: Path, min_score: float, paths: tuple[str, ...]) -> dict[str, float]:
    return below(read(mutants_dir, paths), min_score)


def test_the_gate_names_every_file_under_the_threshold_and_only_those(tmp_path: Path) -> None:
    recorded(tmp_path, "worker/api/retry.py", *[KILLED] * 8, SURVIVED, SURVIVED)  # 80 %
    recorded(tmp_path, "worker/api/client.py", *[KILLED] * 9, SURVIVED)  # 90 %
    recorded(tmp_path, "worker/pipeline/offsets.py", *[KILLED] * 17, SURVIVED, SURVIVED)  # 89.5 %
    recorded(tmp_path, "worker/pipeline/keys.py", *[KILLED] * 17, *[SURVIVED] * 3)  # 85 %: enough
    modules = ("worker/api", "worker/pipeline")
    assert scores_below(tmp_path, 85, modules) == {"worker/api/retry.py": 80.0}
    assert list(scores_below(tmp_path, 90, modules)) == [
        "worker/api/retry.py",
        "worker/pipeline/keys.py",
        "worker/pipeline/offsets.py",
    ]
    assert scores_below(tmp_path, 80, modules) == {}


def test_a_file_is_gated_on_its_own_although_its_module_passes(tmp_path: Path) -> None:
    recorded(tmp_path, "worker/api/retry.py", *[KILLED] * 7, SURVIVED, SURVIVED, SURVIVED)
    recorded(tmp_path, "worker/api/client.py", *[KILLED] * 90)
    mutants = read(tmp_path, ("worker/api",))
    assert tally(mutants, ("worker/api",))["worker/api"]["killed"] == 97  # 97 % for the module
    assert below(mutants, 85) == {"worker/api/retry.py": 70.0}


def test_a_runner_error_is_not_a_kill(tmp_path: Path) -> None:
    recorded(tmp_path, "worker/api/retry.py", *[KILLED] * 5, RUNNER_ERROR)
    assert read(tmp_path, ("worker/api",))[-1].verdict == "error"
    assert scores_below(tmp_path, 85, ("worker/api",)) == {
        "worker/api/retry.py": pytest.approx(83.33, abs=0.01)
    }


def test_mutants_not_tested_yet_count_against_the_score_and_skipped_ones_do_not(
    tmp_path: Path,
) -> None:
    recorded(tmp_path, "worker/api/retry.py", *[KILLED] * 5, UNTESTED, NO_TESTS)
    recorded(tmp_path, "worker/api/client.py", *[KILLED] * 5, SKIPPED, SKIPPED)
    assert scores_below(tmp_path, 85, ("worker/api",)) == {
        "worker/api/retry.py": pytest.approx(71.43, abs=0.01)
    }


def test_the_survivors_are_every_mutant_counted_against_the_score(tmp_path: Path) -> None:
    codes = (KILLED, 36, SURVIVED, RUNNER_ERROR, NO_TESTS, SKIPPED, UNTESTED, 99)
    recorded(tmp_path, "worker/api/retry.py", *codes)
    against = [m.verdict for m in read(tmp_path, ("worker/api",)) if m.counts_against]
    assert against == ["survived", "error", "no tests", "not checked", "suspicious"]


def test_only_the_selected_files_are_read_and_a_selection_without_mutants_is_named(
    tmp_path: Path,
) -> None:
    recorded(tmp_path, "worker/api/retry.py", KILLED)
    recorded(tmp_path, "worker/pipeline/offsets.py", SURVIVED)
    mutants = read(tmp_path, ("worker/api/retry.py",))
    assert mutants == [Mutant("worker.api.retry.x_f__mutmut_1", "worker/api/retry.py", "killed")]
    paths = ("worker/api", "worker/execution", "contracts/codec.py")
    assert without_mutants(read(tmp_path, paths), paths) == [
        "worker/execution",
        "contracts/codec.py",
    ]


def test_a_selection_becomes_the_name_pattern_of_its_mutants() -> None:
    assert name_pattern("worker/api/retry.py") == "worker.api.retry.*"
    assert name_pattern("worker/api") == "worker.api.*"
    assert name_pattern("contracts/codec.py") == "contracts.codec.*"
