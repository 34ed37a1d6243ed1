"""The ops server under hostile clients: webhook floods, slow clients, curious probes.

The server runs in this test's process, so its memory is this process's RSS; the clients
stream their bodies from one shared chunk, so they add next to nothing to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from tests.observability.fakes import (
    RecordingSink,
    new_metrics,
    notice,
    post_notice,
    webhook_receiver,
)
from worker.agents.ncs import SIGNATURE_HEADER
from worker.metrics import Metrics
from worker.observability.health import Health
from worker.observability.server import ClientLimits, OpsServer, build_ops_app
from worker.settings import Settings

MIB = 1024 * 1024
DEFAULTS = Settings()
FLOOD_CLIENTS = 50
FLOOD_BODY_BYTES = 8 * MIB
CHUNK = b"x" * 65_536
# What the limits allow at most: every webhook slot holding a body of the maximum size, plus
# room for the 50 connections' buffers and the interpreter's own growth.
BUDGET_MIB = DEFAULTS.webhook_max_concurrent * DEFAULTS.webhook_max_body_bytes / MIB + 16
HALF_OPEN_CONNECTIONS = 1000
CLOSE_SLACK_SECONDS = 1.0  # the event loop's timer and 1,000 closes, on a shared machine


def figure(request: pytest.FixtureRequest, name: str, value: object) -> None:
    """Keep a measured figure with the test's report (`--junitxml` with junit_family=legacy
    writes them out)."""
    request.node.user_properties.append((name, value))


def rss_mib() -> float:
    """This process's resident set size now."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@contextlib.asynccontextmanager
async def ops_server(
    settings: Settings = DEFAULTS,
    health: Health | None = None,
    entered: Callable[[], None] | None = None,
) -> AsyncIterator[tuple[int, Metrics]]:
    """The worker's ops app with the settings' limits, on a loopback port; `entered` is called
    as each request reaches its handler."""
    metrics = new_metrics()
    receiver = webhook_receiver(
        RecordingSink(),
        metrics,
        max_body_bytes=settings.webhook_max_body_bytes,
        max_concurrent=settings.webhook_max_concurrent,
    )
    app = build_ops_app(metrics, health or Health(settings), receiver)
    if entered is not None:

        @web.middleware
        async def announce(request: web.Request, handler: Handler) -> web.StreamResponse:
            entered()
            return await handler(request)

        app.middlewares.append(announce)
    limits = ClientLimits(settings.http_header_timeout_seconds)
    server = OpsServer(app, "127.0.0.1", 0, limits=limits)
    async with server:
        yield server.port, metrics


async def flood_one(port: int, n: int) -> bytes:
    """POST an 8 MiB body: half of the clients sign it with a digest that cannot match, half
    send no signature; half declare its length, half send it chunked. Returns the status line
    (empty when the server closed the connection before answering)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = ["POST /webhooks/agora HTTP/1.1", "Host: worker", "Content-Type: application/json"]
    if n % 2:
        head.append(f"{SIGNATURE_HEADER}: {'0' * 64}")
    chunked = n % 4 >= 2
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {FLOOD_BODY_BYTES}")
    try:
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        for _ in range(FLOOD_BODY_BYTES // len(CHUNK)):
            writer.write(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK) if chunked else CHUNK)
            await writer.drain()
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except ConnectionError:
        pass  # refused early: the server closed the connection while the body was coming
    try:
        return await asyncio.wait_for(reader.readline(), 30)
    except ConnectionError:
        return b""
    finally:
        writer.close()


async def sample_peak(peak: list[float], stop: asyncio.Event) -> None:
    """Keep the highest RSS seen in `peak[0]` until `stop` is set."""
    while not stop.is_set():
        peak[0] = max(peak[0], rss_mib())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.002)


async def test_fifty_concurrent_8_mib_unsigned_bodies_stay_within_the_memory_budget(
    request: pytest.FixtureRequest,
) -> None:
    """No unsigned body is held beyond the limit (1 MiB), nor more of them than the cap on
    concurrent webhooks: the growth of RSS stays within cap x limit + 16 MiB, every request
    is refused, and a genuine notice is accepted right after."""
    async with ops_server() as (port, metrics):
        gc.collect()
        before = rss_mib()
        peak, stop = [before], asyncio.Event()
        sampler = asyncio.create_task(sample_peak(peak, stop))
        started = time.monotonic()
        answers = await asyncio.gather(*(flood_one(port, n) for n in range(FLOOD_CLIENTS)))
        elapsed = time.monotonic() - started
        stop.set()
        await sampler
        genuine, _ = await post_notice(port, notice(101, {"agent_id": "A1"}))
    growth = peak[0] - before
    figure(request, "rss_before_mib", round(before, 1))
    figure(request, "rss_peak_growth_mib", round(growth, 1))
    figure(request, "flood_seconds", round(elapsed, 2))
    statuses = sorted({line.split(b" ")[1].decode() if line else "closed" for line in answers})
    figure(request, "statuses", statuses)
    assert growth <= BUDGET_MIB, f"RSS grew by {growth:.0f} MiB (budget {BUDGET_MIB:.0f} MiB)"
    assert set(statuses) <= {"401", "413", "503", "closed"}, statuses
    assert genuine == 200
    refused = sum(
        metrics.registry.get_sample_value(
            "convoai_webhook_events_total", {"event_type": "unknown", "verdict": verdict}
        )
        or 0
        for verdict in ("bad_signature", "too_large", "busy")
    )
    assert refused == FLOOD_CLIENTS


async def half_open(port: int) -> float:
    """Connect, send half a request head, never finish it; seconds until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    opened = time.monotonic()
    writer.write(b"POST /webhooks/agora HTTP/1.1\r\nHost: worker\r\nContent-Len")
    await writer.drain()
    try:
        await reader.read()  # b"" once the server closes (an error answer first is fine too)
    except ConnectionError:
        pass
    finally:
        writer.close()
    return time.monotonic() - opened


async def test_a_thousand_half_open_connections_are_closed_within_the_header_timeout(
    request: pytest.FixtureRequest,
) -> None:
    """Clients that never finish their request head hold no connection past the header
    timeout, and the server still answers while they hang."""
    timeout = DEFAULTS.http_header_timeout_seconds
    async with ops_server() as (port, _):
        waiting = [asyncio.create_task(half_open(port)) for _ in range(HALF_OPEN_CONNECTIONS)]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/livez") as response,
        ):
            assert response.status == 200
        async with asyncio.timeout(timeout + CLOSE_SLACK_SECONDS + 5):
            held = await asyncio.gather(*waiting)
    figure(request, "header_timeout_seconds", timeout)
    figure(request, "longest_held_seconds", round(max(held), 2))
    assert max(held) <= timeout + CLOSE_SLACK_SECONDS, f"held {max(held):.1f} s"


async def test_probes_do_not_reveal_exception_texts() -> None:
    """Why outputs or a background task fail is in the logs, not in the probe's answer."""
    health = Health(DEFAULTS)
    health.producer_ready(True)
    health.group_state(joined=True, assigned_partitions=1)
    health.outputs_failing("convoai.results: KafkaError('sasl as admin, password hunter2')")
    health.task_failed("committer", "RuntimeError: token=abc123 refused")
    async with (
        ops_server(health=health) as (port, _),
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/readyz") as response,
    ):
        text = await response.text()
    assert response.status == 503
    for leaked in ("KafkaError", "hunter2", "RuntimeError", "abc123"):
        assert leaked not in text
    assert "outputs not delivered" in text
    assert "committer" in text


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Length": str(FLOOD_BODY_BYTES), SIGNATURE_HEADER: "0" * 64}, 413),
        ({"Content-Length": "100"}, 401),
        ({"Content-Length": "100", SIGNATURE_HEADER: "not-hex"}, 401),
    ],
    ids=["declared-too-large", "unsigned", "malformed-signature"],
)
async def test_a_body_that_cannot_pass_is_refused_before_it_is_sent(
    headers: dict[str, str], status: int
) -> None:
    """The answer comes from the request head alone: the client has sent no body byte."""
    async with ops_server() as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        writer.write(f"POST /webhooks/agora HTTP/1.1\r\nHost: w\r\n{head}\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 3)
        writer.close()
    assert line.startswith(f"HTTP/1.1 {status}".encode())


async def test_a_chunked_body_is_refused_once_it_passes_the_limit() -> None:
    """Without a declared length, reading stops at the limit: the 413 comes while the rest of
    the body is still to come."""
    limit = DEFAULTS.webhook_max_body_bytes
    async with ops_server() as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /webhooks/agora HTTP/1.1\r\nHost: w\r\nTransfer-Encoding: chunked\r\n"
            + f"{SIGNATURE_HEADER}: {'0' * 64}\r\n\r\n".encode()
        )
        for _ in range(limit // len(CHUNK) + 1):  # one chunk beyond the limit, no last chunk
            writer.write(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
            await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 3)
        writer.close()
    assert line.startswith(b"HTTP/1.1 413")


async def test_webhooks_beyond_the_cap_get_503_at_once() -> None:
    """While `cap` webhooks are being received, the next one is refused without a read."""
    cap = 3
    arrived: list[None] = []
    all_in = asyncio.Event()

    def entered() -> None:
        arrived.append(None)
        if len(arrived) == cap:
            all_in.set()

    async with ops_server(Settings(webhook_max_concurrent=cap), entered=entered) as (port, m):
        slow = []
        for _ in range(cap):  # each has sent its head and part of its body
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"POST /webhooks/agora HTTP/1.1\r\nHost: w\r\nContent-Length: 100\r\n"
                + f"{SIGNATURE_HEADER}: {'0' * 64}\r\n\r\n{{".encode()
            )
            await writer.drain()
            slow.append(writer)
        await asyncio.wait_for(all_in.wait(), 5)
        assert m.registry.get_sample_value("convoai_webhooks_in_flight") == cap
        status, answer = await post_notice(port, notice(101, {"agent_id": "A1"}))
        assert (status, answer["verdict"]) == (503, "busy")
        for writer in slow:
            writer.close()
