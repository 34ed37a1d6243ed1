"""Unsecured JWS tokens (RFC 7515 with `alg: none`), as Kafka's unsecured OAUTHBEARER validator
accepts them: what the tests use instead of an identity provider's signed tokens."""

from __future__ import annotations

import base64

import msgspec


def _part(value: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(value)).rstrip(b"=").decode()


def unsecured_jws(subject: str, expires_at: float) -> str:
    """A token for principal `subject`, valid until `expires_at` (Unix seconds)."""
    claims = {"sub": subject, "exp": int(expires_at)}
    return f"{_part({'alg': 'none'})}.{_part(claims)}."
