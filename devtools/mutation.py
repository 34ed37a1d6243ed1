"""mutmut's verdicts, the share of mutants killed per file and module, and the gate of
`make mutants` (scripts/mutants).

mutmut keeps, for each mutated source file, a `mutants/<file>.meta` JSON document whose
`exit_code_by_key` gives each mutant's exit code: that of the test run with the mutant in
place (1: a test failed), one of its own (33: no test covers the mutated function), or null
while the mutant has not been tested. A mutant counts for the tests only when they killed it
or hung on it (a timeout); every other verdict counts against the score, an untested mutant
too, so that a run stopped by its time limit cannot pass the gate.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

# mutmut's exit codes by verdict (after mutmut.stats.status_by_exit_code, which calls 255 a
# timeout: it is the test runner raising, os._exit(-1), so nothing judged the mutant)
VERDICTS: dict[int | None, str] = {
    1: "killed",
    3: "killed",  # pytest's internal error
    37: "killed",  # caught by the type checker
    36: "timeout",
    -24: "timeout",  # SIGXCPU: the CPU limit mutmut sets for each run
    24: "timeout",
    152: "timeout",
    0: "survived",
    5: "no tests",
    33: "no tests",
    34: "skipped",
    255: "error",
    None: "not checked",
}
DETECTED = frozenset({"killed", "timeout"})  # a timeout: the mutant made the tests hang
SKIPPED = "skipped"  # excluded from mutation on purpose: out of the score


class Mutant(NamedTuple):
    """One mutant: its name (`worker.api.retry.x_delay__mutmut_3`), file and verdict."""

    name: str
    source: str  # the mutated file, relative to the project root
    verdict: str

    @property
    def counts_against(self) -> bool:
        """It weighs on the score without having been detected."""
        return self.verdict not in DETECTED and self.verdict != SKIPPED


def verdict(exit_code: int | None) -> str:
    """The verdict of a stored exit code (`suspicious` for one mutmut does not explain)."""
    return VERDICTS.get(exit_code, "suspicious")


def read(mutants_dir: Path, paths: Iterable[str]) -> list[Mutant]:
    """The mutants of the files under `paths` (files or folders) that mutmut has recorded."""
    selected = tuple(paths)
    found = []
    for meta in sorted(mutants_dir.rglob("*.py.meta")):
        source = meta.relative_to(mutants_dir).as_posix().removesuffix(".meta")
        if source.startswith(selected):
            codes = json.loads(meta.read_text())["exit_code_by_key"]
            found += [Mutant(name, source, verdict(code)) for name, code in codes.items()]
    return found


def score(verdicts: Counter[str]) -> float | None:
    """Percent of the mutants detected, skipped ones left out; None when none is left."""
    judged = verdicts.total() - verdicts[SKIPPED]
    if not judged:
        return None
    return 100 * sum(verdicts[v] for v in DETECTED) / judged


def tally(mutants: Iterable[Mutant], group: tuple[str, ...] = ()) -> dict[str, Counter[str]]:
    """Verdicts per file, or per the first of `group` (folders or files) a file lies under."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for mutant in mutants:
        key = next((g for g in group if mutant.source.startswith(g)), mutant.source)
        counts[key][mutant.verdict] += 1
    return dict(counts)


def below(mutants: Iterable[Mutant], min_score: float) -> dict[str, float]:
    """The files whose score is under `min_score` percent, with their score."""
    scores = {source: score(counts) for source, counts in tally(mutants).items()}
    return {
        s: value for s, value in sorted(scores.items()) if value is not None and value < min_score
    }


def without_mutants(mutants: Iterable[Mutant], paths: Iterable[str]) -> list[str]:
    """The `paths` of which mutmut has recorded no mutant at all (it did not get to them)."""
    sources = {mutant.source for mutant in mutants}
    return [path for path in paths if not any(s.startswith(path) for s in sources)]


def name_pattern(path: str) -> str:
    """The mutmut name pattern of a file's or folder's mutants: `worker/api` → `worker.api.*`."""
    return path.removesuffix(".py").rstrip("/").replace("/", ".") + ".*"
