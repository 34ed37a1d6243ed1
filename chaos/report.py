"""The run's figures as `chaos/results/*.json` and as the Markdown table of docs/guarantees.md."""

from __future__ import annotations

import dataclasses
import os
import platform
import re
from pathlib import Path
from typing import Any

import msgspec

from chaos.judge import Figures
from devtools.measure import cpu_model

ROOT = Path(__file__).resolve().parent.parent


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    script = (ROOT / "scripts" / "kafka").read_text()
    kafka = re.search(r'KAFKA_VERSION="\$\{KAFKA_VERSION:-([^}]+)\}"', script)
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "kafka": os.environ.get("KAFKA_VERSION") or (kafka.group(1) if kafka else "?"),
        "system": platform.platform(),
    }


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")


def as_dict(figures: Figures) -> dict[str, Any]:
    return dataclasses.asdict(figures)


def table(all_figures: list[Figures]) -> str:
    """One row per scenario (the judge's definitions; `—` where a figure does not apply)."""
    head = (
        "| scenario | commands + poison | without result | lost | duplicate results "
        "| repeated non-idempotent calls (bound) | calls out of order | succeeded without a call "
        "| dead letters: headers ok / expected | recovery s | longest stall s | outcomes, notes |"
    )
    lines = [head, "|" + "---|" * 12]
    for f in all_figures:
        recovery = "—" if f.recovery_s is None else f"{f.recovery_s:.1f}"
        lines.append(
            f"| {f.scenario} | {f.commands:,} + {f.poison:,} | {f.without_result} | {f.lost} "
            f"| {f.duplicate_results} | {f.repeated_calls} of {f.non_idempotent:,} "
            f"({f.repeat_bound}) | {f.out_of_order} | {f.succeeded_without_call} "
            f"| {f.dead_letters_ok} / {f.dead_letters_expected} "
            f"| {recovery} | {f.longest_stall_s:.1f} | {_remark(f)} |"
        )
    return "\n".join(lines)


def _remark(f: Figures) -> str:
    parts = [", ".join(f"{n} {o}" for o, n in sorted(f.outcomes.items()))]
    if "peak RSS MiB" in f.notes:
        parts.append(f"peak RSS {f.notes['peak RSS MiB']:.0f} MiB, drained in {f.drain_s:.0f} s")
    if f.violations:
        parts.append("**FAILED: " + "; ".join(f.violations) + "**")
    return "; ".join(p for p in parts if p)


def setups(all_figures: list[Figures]) -> str:
    """Each scenario's setup and notes, one line each."""
    return "\n".join(
        f"- {f.scenario} ({f.seconds:.0f} s): {line(f.setup)}; {line(f.notes)}" for f in all_figures
    )


def line(values: dict[str, Any]) -> str:
    """`key value, key value, ...`"""
    return ", ".join(f"{key} {value}" for key, value in values.items())
