"""`convoai-worker emulator`: serve the ConvoAI API emulator for tests, the demo and benchmarks.

It serves the real host's paths (`/api/conversational-ai-agent/v2/...`), so pointing
`CONVOAI_API_BASE_URL` at `http://HOST:PORT/api/conversational-ai-agent` is the only change;
the official SDK reaches it through `AGORA_AGENTS_API_BASE_URL=http://HOST:PORT`. It accepts
the credentials in `CONVOAI_CUSTOMER_ID`/`CONVOAI_CUSTOMER_SECRET` (or `CONVOAI_AUTH_TOKEN`),
any well-formed ones when they are unset. It is as strict as Agora by default
(`worker.emulator.rules`); flags switch each strictness off. Flags set the initial faults;
`PUT /_emulator/faults` changes them at run time. The line `emulator listening on
http://HOST:PORT` on stdout tells scripts the port (useful with `--port 0`); SIGINT or SIGTERM
stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import msgspec
from aiohttp import web

from worker.commands.arguments import (
    fraction,
    non_negative,
    non_negative_int,
    port,
    positive_int,
)
from worker.commands.configured import settings_for
from worker.commands.exit_codes import OK, CommandLineError
from worker.emulator.app import build_app
from worker.emulator.config import EmulatorConfig
from worker.emulator.faults import FaultRule, FaultSettings
from worker.emulator.rules import Rules
from worker.emulator.state import DEFAULT_START_DELAY, DEFAULT_STOP_DELAY
from worker.event_loop import run_async
from worker.observability.server import ListenError, OpsServer


def configure(parser: argparse.ArgumentParser) -> None:
    """Listening address, service behaviour, webhooks and faults."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=port, default=8090, help="port to bind; 0 picks a free one")
    service = parser.add_argument_group("service behaviour")
    service.add_argument(
        "--start-delay",
        type=non_negative,
        default=DEFAULT_START_DELAY,
        help=f"seconds STARTING after a join (default {DEFAULT_START_DELAY:g})",
    )
    service.add_argument(
        "--stop-delay",
        type=non_negative,
        default=DEFAULT_STOP_DELAY,
        help=f"seconds STOPPING after leave (default {DEFAULT_STOP_DELAY:g})",
    )
    service.add_argument(
        "--tenant",
        dest="tenants",
        action="append",
        type=tenant,
        default=[],
        metavar="APP_ID=CUSTOMER_ID:SECRET",
        help="only these credentials reach this App ID (repeat for several accounts)",
    )
    service.add_argument(
        "--max-agents",
        type=positive_int,
        default=20,
        help="concurrent agents per App ID before 422",
    )
    service.add_argument("--request-log-size", type=positive_int, default=10_000)
    service.add_argument(
        "--app-certificate",
        dest="app_certificates",
        action="append",
        type=app_certificate,
        default=[],
        metavar="APP_ID=CERTIFICATE",
        help="tokens for this App ID must be signed with its certificate (repeatable)",
    )
    _strictness(parser.add_argument_group("strictness (as Agora by default)"))
    hooks = parser.add_argument_group("NCS webhooks")
    hooks.add_argument("--webhook-url", default="", help="POST agent events (101/102/110) here")
    hooks.add_argument("--webhook-secret", default="", help="HMAC key of Agora-Signature(-V2)")
    faults = parser.add_argument_group("faults")
    faults.add_argument(
        "--latency-ms", type=non_negative, default=0.0, help="added to every response"
    )
    faults.add_argument("--latency-jitter-ms", type=non_negative, default=0.0, help="random extra")
    faults.add_argument(
        "--error-rate",
        action="append",
        type=status_rate,
        default=[],
        metavar="STATUS=RATE",
        help="answer STATUS to this fraction of requests (repeatable), e.g. 503=0.05",
    )
    faults.add_argument(
        "--burst-429", type=non_negative_int, default=0, help="answer 429 to the first N"
    )
    faults.add_argument(
        "--retry-after", type=non_negative, help="Retry-After seconds of injected errors"
    )
    faults.add_argument("--drop-rate", type=fraction, default=0.0, help="close without answering")
    faults.add_argument("--slow-rate", type=fraction, default=0.0, help="answer late (--slow-ms)")
    faults.add_argument("--slow-ms", type=non_negative, default=30_000.0)
    faults.add_argument(
        "--fault",
        action="append",
        type=fault_rule,
        default=[],
        metavar="JSON",
        help='a fault rule as JSON (repeatable), e.g. {"operation":"agent.start","status":503}',
    )


def _strictness(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--kind", action="store_true", help="switch every strictness off")
    for flag, help_text in (
        ("--no-join-validation", "accept joins without llm/tts, unknown presets, string UIDs"),
        ("--no-auth-required", "accept requests without credentials"),
        ("--no-content-type-check", "accept bodies without content-type: application/json"),
        ("--no-name-in-get", "agent.get answers without `name`"),
        ("--no-idle-exit", "agents never leave after their idle_timeout"),
    ):
        group.add_argument(flag, action="store_true", help=help_text)
    group.add_argument(
        "--name-reuse", choices=("after_stop", "never"), help="when a name is free again"
    )
    group.add_argument("--agent-failure-rate", type=fraction, help="share of agents that fail")
    group.add_argument("--ring-seconds", type=non_negative, help="a call rings this long")
    group.add_argument("--busy-number", dest="busy_numbers", action="append", default=[])
    group.add_argument(
        "--unanswered-number", dest="unanswered_numbers", action="append", default=[]
    )
    group.add_argument(
        "--no-answer-seconds", type=non_negative, help="an unanswered call fails after this long"
    )


def rules(args: argparse.Namespace) -> Rules:
    """The strictness the flags ask for: the defaults (or none with `--kind`), then each flag."""
    changes: dict[str, object] = {
        field: False
        for field, flag in (
            ("validate_join", args.no_join_validation),
            ("require_auth", args.no_auth_required),
            ("check_content_type", args.no_content_type_check),
            ("name_in_get", args.no_name_in_get),
            ("idle_exit", args.no_idle_exit),
        )
        if flag
    }
    for field in ("name_reuse", "agent_failure_rate", "ring_seconds", "no_answer_seconds"):
        if getattr(args, field) is not None:
            changes[field] = getattr(args, field)
    for field in ("busy_numbers", "unanswered_numbers"):
        if getattr(args, field):
            changes[field] = frozenset(getattr(args, field))
    return msgspec.structs.replace(Rules.kind() if args.kind else Rules(), **changes)


def status_rate(text: str) -> tuple[int, float]:
    """`STATUS=RATE`: an HTTP error status and the fraction of requests answered with it."""
    status, sep, rate = text.partition("=")
    try:
        code, share = int(status), float(rate)
    except ValueError:
        code, share = 0, -1.0
    if not sep or not 400 <= code <= 599 or not 0 <= share <= 1:
        raise argparse.ArgumentTypeError(
            f"expected STATUS=RATE with STATUS 400-599 and RATE 0-1 (e.g. 503=0.05), got {text!r}"
        )
    return code, share


def tenant(text: str) -> tuple[str, str]:
    """`APP_ID=CUSTOMER_ID:SECRET`: an App ID and the credentials of its account."""
    app_id, sep, pair = text.partition("=")
    if not sep or not app_id or ":" not in pair:
        raise argparse.ArgumentTypeError(
            f"expected APP_ID=CUSTOMER_ID:SECRET (e.g. app-1=customer:secret), got {text!r}"
        )
    return app_id, pair


def app_certificate(text: str) -> tuple[str, str]:
    """`APP_ID=CERTIFICATE`: an App ID and the certificate its tokens are signed with."""
    app_id, sep, certificate = text.partition("=")
    if not sep or not app_id or not certificate:
        raise argparse.ArgumentTypeError(f"expected APP_ID=CERTIFICATE, got {text!r}")
    return app_id, certificate


def fault_rule(text: str) -> FaultRule:
    """A fault rule as JSON (the body format of `PUT /_emulator/faults`)."""
    try:
        return msgspec.json.decode(text, type=FaultRule)
    except msgspec.DecodeError as error:
        raise argparse.ArgumentTypeError(f"invalid fault rule {text!r}: {error}") from None


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    try:
        config = _config(args)
    except ValueError as exc:
        raise CommandLineError(str(exc)) from None
    try:
        run_async(_serve(build_app(config), args.host, args.port))
    except ListenError as error:
        raise CommandLineError(f"--host/--port: {error.strerror}; choose another --port") from None
    return OK


def _config(args: argparse.Namespace) -> EmulatorConfig:
    settings = settings_for(api=False)
    return EmulatorConfig(
        customer_id=settings.customer_id,
        customer_secret=settings.customer_secret,
        auth_token=settings.auth_token,
        tenants=dict(args.tenants),
        app_certificates=dict(args.app_certificates),
        rules=rules(args),
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
    rules: list[FaultRule] = list(args.fault)
    if args.burst_429:
        rules.append(FaultRule(status=429, count=args.burst_429, retry_after=args.retry_after))
    for status, rate in args.error_rate:
        rules.append(FaultRule(status=status, rate=rate, retry_after=args.retry_after))
    if args.drop_rate:
        rules.append(FaultRule(action="drop", rate=args.drop_rate))
    if args.slow_rate:
        rules.append(FaultRule(action="delay", rate=args.slow_rate, delay_ms=args.slow_ms))
    # flags bypass msgspec's constraint checks; a round trip applies them
    return msgspec.convert(msgspec.to_builtins(rules), list[FaultRule])


async def _serve(app: web.Application, host: str, port: int) -> None:
    async with OpsServer(app, host, port) as server:
        sys.stdout.write(f"emulator listening on http://{host}:{server.port}\n")
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
