"""Reading an NCS callback's body without holding more of it than the limit, signature checked.

`Agora-Signature-V2` is the hex HMAC-SHA256 of the whole raw body: the scheme has no per-chunk
signature, so whether a body is signed can only be known once its last byte is in, and a body
with a well-formed but wrong signature is read up to the limit before it is refused. What is
decided earlier:

- from the request head, before any byte of the body is read: a missing signature, one that is
  not 64 lowercase hex digits, a declared `Content-Length` above the limit;
- while the body streams in: a body (chunked, so of no declared length) that grows beyond the
  limit; the HMAC is fed chunk by chunk as it arrives, so no second pass over the body.

A refused body is not drained: the server closes the connection instead (`OpsServer` sets no
lingering time), so a client cannot make the worker read what it has already refused.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from worker.agents.ncs import SIGNATURE_HEADER, SignatureCheck


class BodyRefusedError(Exception):
    """The body was not read to its end: why, as the HTTP answer."""

    def __init__(self, status: int, verdict: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.verdict = verdict
        self.reason = reason


async def read_signed(
    request: web.Request, secret: bytes, *, limit: int, read_seconds: float
) -> bytes:
    """The raw body of `request` once its signature with `secret` is verified.

    Raises `BodyRefusedError`: 401 for a missing or wrong signature, 413 beyond `limit` bytes,
    408 when the body does not arrive within `read_seconds`.
    """
    check = SignatureCheck(secret, request.headers.get(SIGNATURE_HEADER))
    if not check.plausible:
        raise _bad_signature()
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(read_seconds):
            async for chunk in request.content.iter_any():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                check.update(chunk)
                chunks.append(chunk)
    except TimeoutError:
        reason = f"body not received in {read_seconds:g} s"
        raise BodyRefusedError(408, "slow_client", reason) from None
    if not check.valid():
        raise _bad_signature()
    return b"".join(chunks)


def _bad_signature() -> BodyRefusedError:
    return BodyRefusedError(401, "bad_signature", f"missing or invalid {SIGNATURE_HEADER}")


def _too_large(limit: int) -> BodyRefusedError:
    return BodyRefusedError(
        413, "too_large", f"body larger than {limit} bytes (CONVOAI_WEBHOOK_MAX_BODY_BYTES)"
    )
