"""Figures of `bench/compare.py` as text, a Markdown table, a plot, and a py-spy breakdown."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from typing import Any

from devtools.measure import cpu_model

PACKAGES = (
    "aiokafka",
    "aiohttp",
    "msgspec",
    "uvloop",
    "structlog",
    "prometheus-client",
    "faststream",
    "faststream-concurrent-aiokafka",
)
ROOT = Path(__file__).parent.parent
# stack frames of the launcher (event loop entry); what follows them is the running task
LOOP_FILES = ("uvloop/", "asyncio/runners.py", "asyncio/base_events.py", "asyncio/events.py")
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*):\d+\)$")
TOP = 15
LABELS = {"parallel-consumer": "parallel-consumer (JVM)"}  # system → its name in the table
PROCESSES = "convoai-worker-2-processes"


def setup(
    plan: dict[str, Any], partitions: int, bootstrap: str, jvm: str | None = None
) -> dict[str, Any]:
    """What the figures depend on: versions, sizes, machine (`jvm`: the JVM peer's, if it runs)."""
    kafka = os.environ.get("KAFKA_VERSION")
    if kafka is None:
        found = re.search(r"KAFKA_VERSION:-([\d.]+)", (ROOT / "scripts/kafka").read_text())
        kafka = found.group(1) if found else "?"
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],  # noqa: S607 - git from PATH
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "commit": commit,
        "plan": plan,
        "partitions": partitions,
        "bootstrap": bootstrap,
        "kafka": kafka,
        "python": platform.python_version(),
        "packages": {p: version(p) for p in PACKAGES},
        "jvm": jvm,
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, {platform.machine()}",
        "load_average": os.getloadavg()[0],
    }


def describe(setup: dict[str, Any]) -> str:
    plan = setup["plan"]
    packages = ", ".join(f"{p} {v}" for p, v in setup["packages"].items())
    return (
        f"convoai-worker {setup['commit']}; {plan['commands']:,} agent.speak by agent id over "
        f"{plan['keys']:,} keys, {setup['partitions']} partitions, the first "
        f"{plan['warmup']:,} results warm up; API latency 100 ms and 0 ms (fake API, own "
        f"process); Kafka {setup['kafka']} at {setup['bootstrap']} (one local broker)\n"
        f"Python {setup['python']}; {packages}\n"
        + (f"JVM peer: {setup['jvm']}\n" if setup.get("jvm") else "")
        + f"{setup['machine']}; load average {setup['load_average']:.2f} at the start (the cores "
        "are shared with other work: figures are noisy, compare them side by side)"
    )


def _cell(value: float | None, form: str = ",.0f", mark: str = "") -> str:
    return "-" if value is None else f"{value:{form}}{mark}"


def row(system: str, figures: dict[str, Any]) -> str:
    """One line of the table."""
    label = LABELS.get(system, system)
    if "not_run" in figures:
        return f"| {label} | not run: {figures['not_run']} |" + " - |" * 8
    phases = {p["latency_ms"]: p for p in figures["phases"]}
    slow, fast = phases[100.0], phases[0.0]
    paced = figures.get("paced")
    cells = [
        label,
        _cell(slow["per_second"], mark="" if slow["finished"] else "*"),
        _cell(fast["per_second"], mark="" if fast["finished"] else "*"),
        _cell(slow["cpu_us"]),
        _cell(fast["cpu_us"]),
        _cell(max(p.get("peak_rss_mib", 0) for p in figures["phases"]) or None),
        "-" if paced is None else f"{paced['p50_ms']:.1f} / {paced['p99_ms']:.1f}",
        _cell(paced and paced["rate"]),
        _cell(fast.get("first_result_s"), ".2f"),
        _cell(fast.get("ready_s"), ".2f"),
    ]
    return "| " + " | ".join(cells) + " |"


NOTES = (
    "`*` the backlog did not finish within the time cap; measured over the commands that did. "
    "CPU per command: the user+system time of the process (and of its children: the worker "
    "processes of `--processes 2`) over the measured commands; peak RSS summed the same way. Added "
    "latency: result publish time (broker append time, ms resolution) minus the fake API's "
    "response time, at half the system's commands/s at 100 ms. Start → ready: `/readyz`."
)
HEADER = (
    "| system | cmds/s 100 ms | cmds/s 0 ms | CPU µs/cmd 100 ms | CPU µs/cmd 0 ms | peak RSS MiB "
    "| added latency p50 / p99 ms | at cmds/s | start → first result s | start → ready s |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def markdown(document: dict[str, Any]) -> str:
    setup, systems = document["setup"], document["systems"]
    lines = [
        "# convoai-worker side by side",
        "",
        *(f"{line}  " for line in describe(setup).splitlines()),
        f"Whole run: {setup['seconds']:.0f} s.",
        "",
        HEADER,
        *(row(name, figures) for name, figures in systems.items()),
        "",
        NOTES,
        "",
        *_ratios(systems),
        *_api_load(systems),
        *_cores(systems),
    ]
    if document.get("profile"):
        lines += ["", *_profile_text(document["profile"])]
    return "\n".join(lines) + "\n"


def _ratios(systems: dict[str, Any]) -> list[str]:
    def figure(name: str, latency: float, key: str) -> float | None:
        phases = systems.get(name, {}).get("phases", [])
        return next((p[key] for p in phases if p["latency_ms"] == latency), None)

    speed, cpu = (
        figure("convoai-worker", 100.0, "per_second"),
        figure("convoai-worker", 0.0, "cpu_us"),
    )
    lines = []
    for peer in ("aiokafka-gather", "parallel-consumer", "aiohttp"):
        peer_speed, peer_cpu = figure(peer, 100.0, "per_second"), figure(peer, 0.0, "cpu_us")
        if speed and cpu and peer_speed and peer_cpu:
            lines.append(
                f"- convoai-worker / {LABELS.get(peer, peer)}: {speed / peer_speed:.2f}x the "
                f"commands/s at 100 ms, "
                f"{cpu / peer_cpu:.2f}x the CPU per command at 0 ms"
            )
    pod_slow, pod_fast = (figure(PROCESSES, ms, "per_second") for ms in (100.0, 0.0))
    fast = figure("convoai-worker", 0.0, "per_second")
    if speed and fast and pod_slow and pod_fast:
        largest = max(p.get("peak_rss_largest_mib", 0) for p in systems[PROCESSES]["phases"])
        lines.append(
            f"- {PROCESSES} / convoai-worker: {pod_slow / speed:.2f}x the commands/s at 100 ms, "
            f"{pod_fast / fast:.2f}x at 0 ms; peak RSS of its largest process {largest:.0f} MiB"
        )
    return lines


def _api_load(systems: dict[str, Any]) -> list[str]:
    busiest = max(
        (p for figures in systems.values() for p in figures["phases"]),
        key=lambda p: p["api_cpu_share"],
        default=None,
    )
    if busiest is None:
        return []
    share, rate = busiest["api_cpu_share"], busiest["per_second"]
    return [f"- fake API: at most {share:.0%} of one core (at {rate:,.0f} requests/s)"]


def _cores(systems: dict[str, Any]) -> list[str]:
    """Where the machine's cores went during each 100 ms backlog: a system cannot go faster
    than the cores the broker and the rest leave it."""
    shares = [
        f"{name} {c['system']:.2f} / {c['broker']:.2f} / {c['machine']:.2f}"
        for name, figures in systems.items()
        for phase in figures["phases"]
        if phase["latency_ms"] == 100.0 and (c := phase.get("cores"))
    ]
    if not shares:
        return []
    head = f"- cores busy during the 100 ms backlog, of {os.cpu_count()}"
    return [f"{head} (the system / the broker / the whole machine): {'; '.join(shares)}"]


# ---------------------------------------------------------------- py-spy breakdown
def _module(file: str) -> str:
    return file.removesuffix(".py").replace("/", ".").removesuffix(".__init__")


def _package(file: str) -> str:
    """worker and contracts by subpackage, everything else by top-level package."""
    parts = file.split("/")
    if parts[0] in ("worker", "contracts") and len(parts) > 2:
        return ".".join(parts[:2])
    return _module(parts[0]) if len(parts) > 1 else _module(file)


def _name(frame: tuple[str, str]) -> str:
    return f"{_module(frame[1])}.{frame[0]}"


def profile(path: Path, commands: int, rate: int, measured_us: float) -> dict[str, Any]:
    """CPU per command (µs) from py-spy's collapsed stacks: by task, by own code, by package and
    by function (self time). py-spy leaves out the idle loop but counts a thread that waits for a
    core as busy, so on a loaded machine samples overstate CPU time: the shares of the samples
    are scaled to the CPU time measured over the same commands (`measured_us`)."""
    tasks: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [(m["function"], m["file"]) for f in stack.split(";") if (m := FRAME.match(f))]
        starts = [i for i, (_, file) in enumerate(frames) if file.startswith(LOOP_FILES)]
        frames = frames[starts[-1] + 1 :] if starts else frames
        if not frames:
            frames = [("(event loop)", "uvloop/loop")]
        n = int(count)
        function, file = frames[-1]
        tasks[" > ".join(_name(f) for f in frames[:2])] += n
        mine = [f for f in frames if f[1].startswith(("worker/", "contracts/"))]
        own[_name(mine[-1]) if mine else f"(no worker frame) {_package(frames[0][1])}"] += n
        for name in {_name(f) for f in mine}:
            inclusive[name] += n
        packages[_package(file)] += n
        functions[_name((function, file))] += n
    samples = sum(functions.values())
    per_sample = measured_us / samples

    def top(counter: Counter[str], most: int = TOP) -> list[tuple[str, float]]:
        return [(key, round(n * per_sample, 1)) for key, n in counter.most_common(most)]

    return {
        "sampled_us": round(samples * 1e6 / rate / commands, 1),
        "tasks": top(tasks, 10),
        "own": top(own),
        "inclusive": top(inclusive, 25),
        "packages": top(packages),
        "functions": top(functions),
    }


def _profile_text(found: dict[str, Any]) -> list[str]:
    breakdown = found["breakdown"]
    lines = [
        f"## Where the worker's CPU goes at {found['latency_ms']:g} ms (py-spy, µs per command)",
        "",
        (
            f"{found['commands']:,} commands: {found['cpu_us']:.0f} µs per command measured, "
            f"{breakdown['sampled_us']:.0f} µs sampled (a thread waiting for a core counts as "
            "busy); the figures below are the samples' shares of the measured CPU time."
        ),
    ]
    titles = {
        "tasks": "by task (the root coroutine of the stack, and the one it awaits)",
        "own": "by the innermost worker/contracts function on the stack (with what it calls)",
        "inclusive": "worker/contracts functions with everything they call (overlapping)",
        "packages": "by package of the running function",
        "functions": "by function (self time)",
    }
    for key, title in titles.items():
        lines += ["", f"{title}:", "", "| µs/cmd | where |", "|---:|---|"]
        lines += [f"| {us:.1f} | `{where}` |" for where, us in breakdown[key]]
    return lines


def plot(document: dict[str, Any], path: Path) -> None:
    """Commands/s and CPU per command of every system, at both latencies."""
    import matplotlib as mpl  # noqa: PLC0415 - only the benchmark draws

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    systems = document["systems"]
    names = [name for name, figures in systems.items() if figures["phases"]]
    figure, axes = plt.subplots(1, 2, figsize=(12, 0.6 * len(names) + 2), sharey=True)
    for axis, key, title in (
        (axes[0], "per_second", "commands/s (higher is better)"),
        (axes[1], "cpu_us", "CPU µs per command (lower is better)"),
    ):
        for offset, latency in ((-0.2, 100.0), (0.2, 0.0)):
            values = [
                next(p[key] for p in systems[n]["phases"] if p["latency_ms"] == latency)
                for n in names
            ]
            bars = axis.barh(
                [i + offset for i in range(len(names))],
                values,
                height=0.4,
                label=f"API latency {latency:.0f} ms",
            )
            axis.bar_label(bars, fmt="{:,.0f}", fontsize=8, padding=2)
        axis.set_title(title)
        axis.set_yticks(range(len(names)), [LABELS.get(n, n) for n in names])
        axis.margins(x=0.2)
    axes[0].invert_yaxis()  # the first system on top (the y axis is shared)
    axes[1].legend(loc="lower right")
    setup = document["setup"]
    figure.suptitle(
        f"convoai-worker {setup['commit']}, {setup['plan']['commands']:,} commands; "
        f"{setup['machine']} (shared, noisy)",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
