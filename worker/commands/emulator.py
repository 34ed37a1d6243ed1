"""`convoai-worker emulator`: serve the ConvoAI API emulator for tests, the demo and benchmarks.

It serves the real host's paths (`/api/conversational-ai-agent/v2/...`), so pointing
`CONVOAI_API_BASE_URL` at `http://HOST:PORT/api/conversational-ai-agent` is the only change;
the official SDK reaches it through `AGORA_AGENTS_API_BASE_URL=http://HOST:PORT`. It accepts
the credentials in `CONVOAI_CUSTOMER_ID`/`CONVOAI_CUSTOMER_SECRET` (or `CONVOAI_AUTH_TOKEN`),
any when they are unset. Flags set the initial faults; `PUT /_emulator/faults` changes them
at run time. The line `emulator listening on http://HOST:PORT` on stdout tells scripts the port
(useful with `--port 0`); SIGINT or SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import msgspec
from aiohttp import web

from worker.emulator.app import build_app
from worker.emulator.config import EmulatorConfig
from worker.emulator.faults import FaultRule, FaultSettings
from worker.emulator.state import DEFAULT_STOP_DELAY
from worker.event_loop import run_async
from worker.settings import load_settings


def configure(parser: argparse.ArgumentParser) -> None:
    """Listening address, service behaviour, webhooks and faults."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8090, help="port to bind; 0 picks a free one")
    service = parser.add_argument_group("service behaviour")
    service.add_argument("--start-delay", type=float, default=0.0, help="seconds STARTING")
    service.add_argument(
        "--stop-delay",
        type=float,
        default=DEFAULT_STOP_DELAY,
        help=f"seconds STOPPING after leave (default {DEFAULT_STOP_DELAY:g})",
    )
    service.add_argument(
        "--max-agents", type=int, default=20, help="concurrent agents per App ID before 422"
    )
    service.add_argument("--request-log-size", type=int, default=10_000)
    hooks = parser.add_argument_group("NCS webhooks")
    hooks.add_argument("--webhook-url", default="", help="POST agent events (101/102/110) here")
    hooks.add_argument("--webhook-secret", default="", help="HMAC key of Agora-Signature(-V2)")
    faults = parser.add_argument_group("faults")
    faults.add_argument("--latency-ms", type=float, default=0.0, help="added to every response")
    faults.add_argument("--latency-jitter-ms", type=float, default=0.0, help="random extra")
    faults.add_argument(
        "--error-rate",
        action="append",
        default=[],
        metavar="STATUS=RATE",
        help="answer STATUS to this fraction of requests (repeatable), e.g. 503=0.05",
    )
    faults.add_argument("--burst-429", type=int, default=0, help="answer 429 to the first N")
    faults.add_argument("--retry-after", type=float, help="Retry-After seconds of injected errors")
    faults.add_argument("--drop-rate", type=float, default=0.0, help="close without answering")
    faults.add_argument("--slow-rate", type=float, default=0.0, help="answer late (--slow-ms)")
    faults.add_argument("--slow-ms", type=float, default=30_000.0)
    faults.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="JSON",
        help='a fault rule as JSON (repeatable), e.g. {"operation":"agent.start","status":503}',
    )


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    try:
        config = _config(args)
    except (ValueError, msgspec.DecodeError) as exc:
        sys.stderr.write(f"convoai-worker emulator: {exc}\n")
        return 2
    run_async(_serve(build_app(config), args.host, args.port))
    return 0


def _config(args: argparse.Namespace) -> EmulatorConfig:
    settings = load_settings()
    return EmulatorConfig(
        customer_id=settings.customer_id,
        customer_secret=settings.customer_secret,
        auth_token=settings.auth_token,
        start_delay=args.start_delay,
        stop_delay=args.stop_delay,
        max_agents_per_app=args.max_agents,
        request_log_size=args.request_log_size,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        faults=FaultSettings(
            latency_ms=args.latency_ms,
            latency_jitter_ms=args.latency_jitter_ms,
            rules=_rules(args),
        ),
    )


def _rules(args: argparse.Namespace) -> list[FaultRule]:
    rules = [msgspec.json.decode(text, type=FaultRule) for text in args.fault]
    if args.burst_429:
        rules.append(FaultRule(status=429, count=args.burst_429, retry_after=args.retry_after))
    for spec in args.error_rate:
        status, _, rate = spec.partition("=")
        rules.append(FaultRule(status=int(status), rate=float(rate), retry_after=args.retry_after))
    if args.drop_rate:
        rules.append(FaultRule(action="drop", rate=args.drop_rate))
    if args.slow_rate:
        rules.append(FaultRule(action="delay", rate=args.slow_rate, delay_ms=args.slow_ms))
    # flags bypass msgspec's constraint checks; a round trip applies them
    return msgspec.convert(msgspec.to_builtins(rules), list[FaultRule])


async def _serve(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    for bound in runner.addresses:
        sys.stdout.write(f"emulator listening on http://{bound[0]}:{bound[1]}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
