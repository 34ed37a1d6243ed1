"""Emulator throughput on one core at 0 ms latency, measured by wrk from another core.

Setup (printed with the figures): `convoai-worker emulator --port 0` (uvloop, no access log,
default request log of 10,000 entries, `--max-agents 10000000`) pinned to CPU 0; wrk pinned to
CPU 1 with 1 thread and C keep-alive connections, for D seconds per scenario after a 2 s warm-up:

    get     GET  /v2/projects/{app}/agents/{id}         read one agent
    speak   POST /v2/projects/{app}/agents/{id}/speak   JSON body; writes history and a turn
    join    POST /v2/projects/{app}/join                a new agent per request (unique names)

For each: requests/s, latency p50/p99 as wrk reports them, non-2xx answers, the emulator's CPU
time per request (from /proc/PID/stat) and the rate one fully busy core would sustain at that
cost (1 s / CPU per request), which stays meaningful when other work shares the machine. The
target is >= 5,000 requests/s.

Requires wrk (Debian: `apt-get install -y wrk`) and two cores.
Usage: uv run python bench/bench_emulator.py [--duration 10] [--connections 64]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from importlib.metadata import version

import msgspec

from devtools.measure import cpu_model, cpu_seconds

APP = "bench-app"
BASE = "/api/conversational-ai-agent"
START_BODY = {
    "properties": {"channel": "c", "token": "t", "agent_rtc_uid": "1", "remote_rtc_uids": ["2"]}
}
JOIN_SCRIPT = """
counter = 0
properties = '"properties":{"channel":"c","token":"t","agent_rtc_uid":"1","remote_rtc_uids":["2"]}'
request = function()
  counter = counter + 1
  local body = '{"name":"RUN-' .. counter .. '",' .. properties .. '}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
"""
SPEAK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"text":"Hello from the benchmark","priority":"APPEND"}'
wrk.headers["Content-Type"] = "application/json"
"""


EMULATOR = (sys.executable, "-m", "worker", "emulator")


def pinned(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})


def start_emulator() -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVOAI_")}
    # requests/s of the forgiving service (`--kind`): wrk sends no credentials
    process = subprocess.Popen(
        [*EMULATOR, "--port", "0", "--max-agents", "10000000", "--kind"],
        stdout=subprocess.PIPE,
        env=env,
        preexec_fn=lambda: pinned(0),  # noqa: PLW1509 - only sets the CPU affinity
    )
    if process.stdout is None:
        raise SystemExit("no pipe to the emulator's stdout")
    line = process.stdout.readline().decode()
    if not line.startswith("emulator listening on "):
        raise SystemExit(f"emulator did not start: {line!r}")
    return process, line.split()[-1]


def post(url: str, body: object) -> dict[str, object]:
    request = urllib.request.Request(  # noqa: S310 - loopback URL built here
        url, data=msgspec.json.encode(body), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:  # noqa: S310
        result: dict[str, object] = msgspec.json.decode(response.read())
        return result


def run_wrk(url: str, script: str | None, duration: float, connections: int) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write((script or "").replace("RUN", uuid.uuid4().hex))  # names unique across runs
        lua.flush()
        command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", lua.name]
        completed = subprocess.run(
            [*command, url],
            capture_output=True,
            text=True,
            check=True,
            preexec_fn=lambda: pinned(1),
        )
    return completed.stdout


def parse(output: str) -> dict[str, str]:
    found = {
        "rps": re.search(r"Requests/sec:\s+([\d.]+)", output),
        "p50": re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE),
        "p99": re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE),
        "non2xx": re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output),
        "errors": re.search(r"Socket errors: (.*)", output),
    }
    return {key: (match.group(1) if match else "0") for key, match in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is required: apt-get install -y wrk")
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("two CPUs are required (emulator and wrk on separate cores)")

    process, origin = start_emulator()
    try:
        agent = post(f"{origin}{BASE}/v2/projects/{APP}/join", {"name": "bench", **START_BODY})
        agent_url = f"{origin}{BASE}/v2/projects/{APP}/agents/{agent['agent_id']}"
        scenarios = {
            "get": (agent_url, None),
            "speak": (f"{agent_url}/speak", SPEAK_SCRIPT),
            "join": (f"{origin}{BASE}/v2/projects/{APP}/join", JOIN_SCRIPT),
        }
        print(
            f"setup: {platform.python_implementation()} {platform.python_version()}, "
            f"aiohttp {version('aiohttp')}, uvloop {version('uvloop')}, msgspec "
            f"{version('msgspec')}; emulator on CPU 0, wrk on CPU 1 "
            f"(1 thread, {args.connections} connections, {args.duration} s per scenario, "
            f"0 ms latency, no faults); {os.cpu_count()} CPUs ({cpu_model()})"
        )
        print(
            f"{'scenario':<8} {'req/s':>10} {'p50':>9} {'p99':>9} {'non-2xx':>8} "
            f"{'µs CPU/req':>11} {'req/s per busy core':>20}"
        )
        for name, (url, script) in scenarios.items():
            run_wrk(url, script, 2, args.connections)  # warm-up
            before = cpu_seconds(process.pid)
            stats = parse(run_wrk(url, script, args.duration, args.connections))
            spent = cpu_seconds(process.pid) - before
            requests = float(stats["rps"]) * args.duration
            per_request = spent / requests * 1e6 if requests else float("nan")
            print(
                f"{name:<8} {float(stats['rps']):>10,.0f} {stats['p50']:>9} {stats['p99']:>9} "
                f"{stats['non2xx']:>8} {per_request:>11.1f} {1e6 / per_request:>20,.0f}"
                + (f"  socket errors: {stats['errors']}" if stats["errors"] != "0" else "")
            )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


if __name__ == "__main__":
    main()
