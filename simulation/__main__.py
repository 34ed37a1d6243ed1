"""`python -m simulation`: run seeded schedules of overlapping faults against a simulated group.

    make simulate                 seeds for 10 minutes (SIMULATE_BUDGET=seconds to change it)
    make simulate SEED=1234       that one schedule, every fault and figure printed
    make simulate-quick           the fixed budget CI runs

Each schedule runs on virtual time (`simulation.clock`) and is judged by
`simulation.invariants`. A failing seed prints a one-line reproduction and the schedule shrunk
to the faults that still break the same promise. Exit status: 0 when every schedule held, 1
otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter

from simulation.invariants import Figures, Violation, judge
from simulation.schedule import Schedule, draw
from simulation.world import settings_for, simulate

QUICK_BUDGET_SECONDS = 90.0
FULL_BUDGET_SECONDS = 600.0


def main() -> int:
    """Run the seeds the arguments ask for; print the figures and any failure."""
    parser = argparse.ArgumentParser(prog="python -m simulation", description=__doc__)
    parser.add_argument("--seed", type=int, help="run this seed alone, verbosely")
    parser.add_argument("--first-seed", type=int, default=0, help="the first seed of a run")
    parser.add_argument(
        "--budget", type=float, default=FULL_BUDGET_SECONDS, help="seconds of seeds to run"
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_BUDGET_SECONDS:g} s")
    args = parser.parse_args()
    if os.environ.get("PYTHONHASHSEED") != "0":
        # sets of strings iterate in the same order only with the same hash seed
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, "-m", "simulation", *sys.argv[1:]])  # noqa: S606
    if args.seed is not None:
        return _one(args.seed)
    budget = QUICK_BUDGET_SECONDS if args.quick else args.budget
    return _many(args.first_seed, budget)


def _run(schedule: Schedule) -> tuple[list[Violation], Figures, float]:
    observations, took = simulate(schedule, settings_for())
    violations, figures = judge(observations)
    return violations, figures, took


def _one(seed: int) -> int:
    schedule = draw(seed)
    print(_setup(schedule))
    for fault in schedule.faults:
        print("  " + fault.describe())
    violations, figures, took = _run(schedule)
    print(f"{_figures(figures)}; {took:.2f} s of real time")
    for violation in violations:
        print(f"  VIOLATION {violation.kind}: {violation.detail}")
    return 1 if violations else 0


def _many(first: int, budget: float) -> int:
    started = time.perf_counter()
    seed = first
    faults = 0
    totals: Counter[str] = Counter()
    failed = None
    while time.perf_counter() - started < budget:
        schedule = draw(seed)
        violations, figures, _ = _run(schedule)
        faults += len(schedule.faults)
        for name, value in figures._asdict().items():
            if isinstance(value, int):
                totals[name] += value
        if violations:
            failed = (schedule, violations)
            break
        seed += 1
    runs = seed - first + (failed is not None)
    took = time.perf_counter() - started
    print(
        f"simulate: {runs} schedules (seeds {first}-{first + runs - 1}) in {took:.1f} s, "
        f"{runs / took:.1f} schedules/s, {faults / max(1, runs):.1f} faults per schedule"
    )
    print(
        f"  commands {totals['commands']:,}, repeated calls {totals['repeated_calls']} "
        f"(allowance {totals['allowance']}), duplicate results {totals['duplicate_results']}, "
        f"crashes and forced exits {totals['crashes']}, killed at the end of a release "
        f"{totals['killed']}"
    )
    if failed is None:
        print("  0 violations")
        return 0
    schedule, violations = failed
    print(f"FAILED seed {schedule.seed}: {len(violations)} violation(s)")
    for violation in violations:
        print(f"  {violation.kind}: {violation.detail}")
    print(f"  reproduce: make simulate SEED={schedule.seed}")
    shrunk = _shrink(schedule, {v.kind for v in violations})
    print(f"  shrunk to {len(shrunk.faults)} of {len(schedule.faults)} faults ({_setup(shrunk)}):")
    for fault in shrunk.faults:
        print("    " + fault.describe())
    return 1


def _shrink(schedule: Schedule, kinds: set[str]) -> Schedule:
    """Drop faults one at a time while the run still breaks one of the same promises."""
    index = 0
    while index < len(schedule.faults):
        smaller = schedule.without(index)
        violations, _, _ = _run(smaller)
        if kinds & {v.kind for v in violations}:
            schedule = smaller
        else:
            index += 1
    return schedule


def _setup(schedule: Schedule) -> str:
    return (
        f"seed {schedule.seed}: {schedule.members} members at the start, {schedule.keys} "
        f"agents, produced over {schedule.produce_seconds:g} s"
    )


def _figures(figures: Figures) -> str:
    return (
        f"{figures.commands} commands, {figures.results} results, "
        f"{figures.repeated_calls} repeated calls (allowance {figures.allowance}), "
        f"{figures.duplicate_results} duplicate results, {figures.virtual_seconds} s of "
        "virtual time"
    )


if __name__ == "__main__":
    sys.exit(main())
