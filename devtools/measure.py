"""What the benchmarks and the chaos suite read about the machine and their processes."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_model() -> str:
    """The processor's model name (benchmark figures are printed with it)."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent on anything but idling and waiting for I/O, since boot."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def family(pid: int) -> list[int]:
    """The process and its descendants (a `run --processes N` parent and its workers)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, index = [pid], 0
    while index < len(found):
        found += children.get(found[index], [])
        index += 1
    return found


def family_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its running descendants."""
    return sum(_or_zero(cpu_seconds, member) for member in family(pid))


def family_peak_rss_mib(pid: int) -> tuple[float, float]:
    """Peak RSS of a process and its running descendants together, and of the largest one."""
    peaks = [_or_zero(peak_rss_mib, member) for member in family(pid)]
    return sum(peaks), max(peaks)


def _or_zero(read: Callable[[int], float], pid: int) -> float:
    """`read(pid)`, or 0 for a process that exited meanwhile."""
    try:
        return read(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def peak_rss_mib(pid: int) -> float:
    """Peak resident set size (VmHWM) of a running process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0
