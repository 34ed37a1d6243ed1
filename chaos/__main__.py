"""`python -m chaos [--quick] [--seed N] [--only 1,4]`: the chaos suite (`make chaos`).

Starts its own broker (free ports, temporary data) and the API emulator in its own process,
runs the seven scenarios of `chaos.scenarios` with worker processes, scans everything they
emitted for the configured secrets, writes the figures as JSON and prints them as a Markdown
table with their setup. Exits 1 when a guarantee was broken or a secret leaked.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import secrets
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from chaos import report
from chaos.infra import EmulatorProcess, OwnBroker
from chaos.judge import Figures
from chaos.leaks import SecretScan
from chaos.scenarios import FULL, QUICK, SCENARIOS, Scenario, Size
from chaos.stage import Run
from worker.settings import Settings

RESULTS = report.ROOT / "chaos" / "results"


def credentials() -> dict[str, str]:
    """Fresh credentials for this run, and the Authorization value they make."""
    values = {
        "CONVOAI_CUSTOMER_ID": f"cid-{secrets.token_hex(12)}",
        "CONVOAI_CUSTOMER_SECRET": secrets.token_urlsafe(24),
        "CONVOAI_WEBHOOK_SECRET": secrets.token_urlsafe(24),
    }
    pair = f"{values['CONVOAI_CUSTOMER_ID']}:{values['CONVOAI_CUSTOMER_SECRET']}"
    values["Basic authorization"] = base64.b64encode(pair.encode()).decode()
    return values


def worker_settings(secret: dict[str, str], quick: bool) -> dict[str, Any]:
    """What every worker of the run gets: the credentials, production retry timing, INFO logs
    (so the secrets scan reads the startup lines), group timing (shorter in the short form)."""
    defaults = Settings()
    return {
        "customer_id": secret["CONVOAI_CUSTOMER_ID"],
        "customer_secret": secret["CONVOAI_CUSTOMER_SECRET"],
        "webhook_secret": secret["CONVOAI_WEBHOOK_SECRET"],
        "api_backoff_base_seconds": defaults.api_backoff_base_seconds,
        "api_backoff_max_seconds": defaults.api_backoff_max_seconds,
        "api_quota_backoff_seconds": defaults.api_quota_backoff_seconds,
        "kafka_session_timeout_seconds": 6.0 if quick else defaults.kafka_session_timeout_seconds,
        "kafka_heartbeat_interval_seconds": 2.0 if quick else 3.0,
        "log_level": "INFO",
    }


async def chaos(args: argparse.Namespace) -> int:
    size = QUICK if args.quick else FULL
    secret = credentials()
    scan = SecretScan(secret)
    log_dir = Path(tempfile.mkdtemp(prefix="chaos-logs-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVOAI_")}
    env |= {name: secret[name] for name in ("CONVOAI_CUSTOMER_ID", "CONVOAI_CUSTOMER_SECRET")}
    log_size = 2 * max(size.keys * size.per_key, size.backlog_keys * size.backlog_per_key)
    started, machine = time.monotonic(), report.machine()
    async with (
        OwnBroker() as broker,
        EmulatorProcess(env, log_dir / "emulator.log", log_size) as emulator,
    ):
        worker = worker_settings(secret, args.quick)
        run = Run(broker, emulator, log_dir, args.seed, worker, scan)
        figures = [await play(SCENARIOS[number - 1], run, size) for number in args.only]
    scan("emulator log", (log_dir / "emulator.log").read_bytes())
    summary = {
        "mode": "quick" if args.quick else "full",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started),
        "seed": args.seed,
        "machine": machine | {"load_average_1m_at_end": round(os.getloadavg()[0], 2)},
        "scenarios": [report.as_dict(f) for f in figures],
    }
    table = report.table(figures)
    scan("report", table.encode() + msgspec.json.encode(summary))
    passed = not scan.leaks and not any(f.violations for f in figures)
    summary |= {"passed": passed, "secrets_scan": scan.summary()}
    report.write_json(args.out or RESULTS / f"{'quick' if args.quick else 'latest'}.json", summary)
    print(f"\n{table}\n\nMachine: {report.line(summary['machine'])}\n{report.setups(figures)}")
    print(f"Secrets scan: {report.line(scan.summary())}")
    if passed and not args.keep_logs:
        shutil.rmtree(log_dir)
    else:
        print(f"Worker and emulator logs: {log_dir}")
    print(f"chaos: {'passed' if passed else 'FAILED'} in {summary['seconds']} s")
    return 0 if passed else 1


async def play(scenario: Scenario, run: Run, size: Size) -> Figures:
    """Run one scenario; a crash is a failed scenario (its traceback goes to stderr)."""
    print(f"chaos: {scenario.__name__} ...", flush=True)
    try:
        figures = await scenario(run, size)
    except Exception as error:  # noqa: BLE001 - reported as the scenario's violation
        traceback.print_exc()
        figures = Figures(scenario.__name__, {}, violations=[f"crashed: {error!r}"])
    verdict = "; ".join(figures.violations) or "ok"
    print(f"chaos: {figures.scenario}: {verdict} ({figures.seconds:.0f} s)", flush=True)
    return figures


def main() -> int:
    # the suite's own clients lose the broker on purpose (scenario 2): no reconnect noise
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the short form (CI)")
    parser.add_argument("--seed", type=int, default=13, help="seeds every random choice")
    parser.add_argument(
        "--only",
        type=lambda text: [int(n) for n in text.split(",")],
        default=list(range(1, len(SCENARIOS) + 1)),
        help="scenario numbers, e.g. 1,4",
    )
    parser.add_argument("--keep-logs", action="store_true", help="also when every check passed")
    parser.add_argument("--out", type=Path, help="the JSON file (default chaos/results/)")
    return asyncio.run(chaos(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
