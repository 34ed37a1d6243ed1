"""A fake ConvoAI API for the comparison benchmark: answers every `POST …/speak` with one fixed
200 response after a fixed delay, at (almost) no cost per request, in its own process.

It parses only the request line and `Content-Length` (HTTP/1.1 keep-alive, no pipelining, which
is what aiohttp sends) and keeps a log of (response time, request body) so the benchmark can
match each command's API response to the publish time of its result. Admin requests:
`PUT /_fake/latency/<ms>` sets the delay; `GET /_fake/log` returns the log as JSON and clears it.

Usage: python -m bench.fake_api --port N [--latency-ms 100]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import cast

import msgspec
import uvloop

from devtools.local import exit_with_parent

BODY = b'{"agent_id":"fake","channel":"fake","start_ts":1700000000}'
SPEAK_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


class Server:
    """The latency setting and the response log, shared by all connections."""

    def __init__(self, latency_ms: float) -> None:
        self.delay = latency_ms / 1000
        self.log: list[tuple[float, bytes]] = []

    def admin(self, method: bytes, target: bytes) -> bytes:
        if method == b"PUT" and target.startswith(b"/_fake/latency/"):
            self.delay = float(target.rsplit(b"/", 1)[1]) / 1000
            body = b"{}"
        elif method == b"GET" and target == b"/_fake/log":
            body = msgspec.json.encode([(t, b.decode()) for t, b in self.log])
            self.log = []
        else:
            return NOT_FOUND
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


class Connection(asyncio.Protocol):
    """One keep-alive connection: requests are answered in order, each after the delay."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a TCP server's (uvloop's own class)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            at = head.find(b"\ncontent-length:")
            length = int(head[at + 16 :].split(b"\r", 1)[0]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            method, target, _ = self.buffer[: self.buffer.find(b"\r\n")].split(b" ", 2)
            self.buffer = self.buffer[end + 4 + length :]
            self.request(method, target, body)

    def request(self, method: bytes, target: bytes, body: bytes) -> None:
        if not (method == b"POST" and target.endswith(b"/speak")):
            self.write(self.server.admin(method, target))
        elif self.server.delay:
            asyncio.get_running_loop().call_later(self.server.delay, self.speak, body)
        else:
            self.speak(body)

    def speak(self, body: bytes) -> None:
        self.server.log.append((time.time(), body))
        self.write(SPEAK_OK)

    def write(self, response: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(response)


async def serve(port: int, latency_ms: float) -> None:
    server = Server(latency_ms)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(lambda: Connection(server), "127.0.0.1", port, backlog=4096)
    async with listener:
        await listener.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    args = parser.parse_args()
    exit_with_parent()
    uvloop.run(serve(args.port, args.latency_ms))


if __name__ == "__main__":
    main()
