"""Reading an Agora AccessToken2 (`agora token=007...`), as the real service checks one.

The format (`docs/api-reference.md` §1.3): `"007"` + base64 of zlib-compressed
`pstr(signature) + signing_info`, where `signing_info` starts with `pstr(app_id)`, `issue_ts`,
`expire` (seconds after `issue_ts`) and `salt`, and the signature is HMAC-SHA256 over
`signing_info` with a key derived from the App Certificate, `issue_ts` and `salt`. Without the
certificate the emulator can still refuse what the service would: a string that is not such a
token, a token of another App ID, an expired one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import zlib
from typing import NamedTuple

PREFIX = "007"


class AccessToken(NamedTuple):
    """What a token says about itself."""

    app_id: str
    issued_at: int
    expires_at: int
    salt: int
    signature: bytes
    signing_info: bytes

    def signed_with(self, certificate: str) -> bool:
        """Whether the signature was made with `certificate` (the App Certificate)."""
        key = hmac.new(struct.pack("<I", self.issued_at), certificate.encode(), hashlib.sha256)
        key = hmac.new(struct.pack("<I", self.salt), key.digest(), hashlib.sha256)
        expected = hmac.new(key.digest(), self.signing_info, hashlib.sha256).digest()
        return hmac.compare_digest(expected, self.signature)


def parse(token: str) -> AccessToken | None:
    """The token's fields, None when it is not an AccessToken2."""
    if not token.startswith(PREFIX):
        return None
    try:
        raw = zlib.decompress(base64.b64decode(token[len(PREFIX) :], validate=True))
        signature, rest = _pstr(raw)
        app_id, tail = _pstr(rest)
        issued_at, expire, salt = struct.unpack_from("<III", tail)
        return AccessToken(app_id.decode(), issued_at, issued_at + expire, salt, signature, rest)
    except (binascii.Error, zlib.error, struct.error, UnicodeDecodeError, ValueError):
        return None


def _pstr(data: bytes) -> tuple[bytes, bytes]:
    """A uint16-length-prefixed string and what follows it."""
    (length,) = struct.unpack_from("<H", data)
    if len(data) < 2 + length:
        raise ValueError("truncated")
    return data[2 : 2 + length], data[2 + length :]
